//! The injection decision and the JSONPatch that adds outrigger-proxy to a pod.
//!
//! Pure functions over a `Pod`: no I/O, so every rule is unit-tested. The rendered container
//! mirrors `charts/outrigger-sidecar/templates/_container.tpl` (same name, ports, env, probes,
//! securityContext) so injected and Helm-templated sidecars are indistinguishable.
//!
//! It also owns **Service routing**: a Service reaches a pod through a container port, by name or
//! by number. Without privileges (no iptables redirect, Pod Security "restricted") the only way to
//! put the proxy on that path is by name: when the app's port is named (say `http`), the name moves
//! from the app's port to the proxy's inbound port, so every Service with `targetPort: http` now
//! resolves to 4143 and the proxy forwards to the app on loopback. The app's own probes and
//! lifecycle hooks that used the name are rewritten to the number, so they still reach the app
//! directly. An unnamed app port cannot be moved: the pod gets an admission warning and an
//! annotation saying how to fix it (name the port, target it by name).
//!
//! And it owns **drain on termination**: the kubelet sends a native sidecar SIGTERM only after
//! the app exited, too late to leave the endpoints gracefully. So the app container gets a
//! `preStop` `httpGet` to the proxy's admin port, path `/drain` (main containers' preStop hooks
//! run first, and the app's SIGTERM waits for them), which starts the proxy's drain and answers
//! once the drain delay is over. `/drain` needs a per-pod token: any pod can reach the admin port.
//! Each injected pod gets a fresh random token, in the proxy's `OUTRIGGER_PROXY_DRAIN_TOKEN` and
//! in the hook's `X-Outrigger-Drain-Token` header. An app container with its own preStop hook
//! keeps it (a container has one); the pod gets a warning saying what that costs.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::config::ProxySpec;

/// Pod annotation (and namespace label) that turns injection on (`enabled`) or off (`disabled`).
pub const INJECT_ANNOTATION: &str = "outrigger.io/inject";
/// Pod annotation naming the app's port (default: the first container's first port, else 8080).
pub const APP_PORT_ANNOTATION: &str = "outrigger.io/app-port";
/// Annotation the injector sets on pods it changed, with its version.
pub const INJECTED_ANNOTATION: &str = "outrigger.io/injected";
/// Name of the injected container (same as the library chart's `containerName`).
pub const CONTAINER_NAME: &str = "outrigger-proxy";
/// Annotation naming the container port name Services must target to go through the proxy.
pub const SERVICE_PORT_ANNOTATION: &str = "outrigger.dev/service-target-port";
/// Annotation set when Service traffic cannot be routed through the proxy, saying why and how.
pub const ROUTING_ANNOTATION: &str = "outrigger.dev/service-routing";
/// Mesh inbound port.
pub const INBOUND_PORT: u16 = 4143;
/// Name of the inbound container port (the library chart's Services target it by name).
pub const INBOUND_PORT_NAME: &str = "outrigger";
/// Name of the admin container port (probes, PodMonitor).
pub const ADMIN_PORT_NAME: &str = "outrigger-admin";
/// Proxy admin port.
pub const ADMIN_PORT: u16 = 4191;
/// Proxy env var holding the drain token.
pub const DRAIN_TOKEN_ENV: &str = "OUTRIGGER_PROXY_DRAIN_TOKEN";
/// Header the preStop hook sends the token in.
pub const DRAIN_TOKEN_HEADER: &str = "X-Outrigger-Drain-Token";
/// Admin path that starts the proxy's drain.
pub const DRAIN_PATH: &str = "/drain";
/// Random bytes per token (hex-encoded: 64 characters).
const DRAIN_TOKEN_BYTES: usize = 32;
const DEFAULT_APP_PORT: i32 = 8080;
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Which webhook called: decides what "not annotated" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/mutate`: inject only pods annotated `outrigger.io/inject: enabled`.
    PodOptIn,
    /// `/mutate/namespace`: the namespace is labelled for injection (the webhook's
    /// namespaceSelector guarantees it); inject unless the pod opts out.
    Namespace,
}

/// Why a pod was left alone; also the `reason` label of the admissions metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No `outrigger.io/inject: enabled` annotation (pod opt-in mode).
    NotEnabled,
    /// `outrigger.io/inject: disabled`.
    Disabled,
    /// Already carries the proxy (reinvocation, or added by hand / by the library chart).
    AlreadyInjected,
    /// hostNetwork pods share the node's ports: a proxy on 4143/4191 would collide.
    HostNetwork,
}

impl SkipReason {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotEnabled => "not_enabled",
            Self::Disabled => "disabled",
            Self::AlreadyInjected => "already_injected",
            Self::HostNetwork => "host_network",
        }
    }
}

/// A pod the injector cannot handle; the pod is admitted unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    /// `outrigger.io/app-port` is not a port number.
    #[error("annotation {APP_PORT_ANNOTATION}: {0:?} is not a port (1-65535)")]
    BadAppPort(String),
    /// The operating system gave no random bytes for the drain token.
    #[error("no random bytes for the drain token: {0}")]
    NoRandom(String),
}

impl InjectError {
    /// Metric label value.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadAppPort(_) => "bad_app_port",
            Self::NoRandom(_) => "no_random",
        }
    }
}

/// The outcome for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Apply these JSONPatch operations; return the warnings to the client (kubectl prints them).
    Inject(json_patch::Patch, Vec<String>),
    /// Leave the pod alone.
    Skip(SkipReason),
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(|v| v.trim())
}

fn has_proxy(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.name == CONTAINER_NAME)
}

/// The app port: the annotation, else the first container's first port, else 8080.
fn app_port(pod: &Pod) -> Result<i32, InjectError> {
    if let Some(v) = annotation(pod, APP_PORT_ANNOTATION) {
        return match v.parse::<i32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p),
            _ => Err(InjectError::BadAppPort(v.to_owned())),
        };
    }
    Ok(pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map_or(DEFAULT_APP_PORT, |p| p.container_port))
}

/// A fresh drain token: 32 bytes from the operating system's CSPRNG, hex-encoded.
pub fn new_drain_token() -> Result<String, InjectError> {
    let mut bytes = [0u8; DRAIN_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| InjectError::NoRandom(e.to_string()))?;
    let mut hex = String::with_capacity(DRAIN_TOKEN_BYTES * 2);
    for b in bytes {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// The app container's preStop hook: `GET /drain` on the proxy's admin port with the token.
/// The port is a number: kubelet resolves a named port in the hook's own container, and the
/// admin port's name belongs to the proxy.
pub fn app_pre_stop(drain_token: &str) -> Value {
    json!({
        "httpGet": {
            "path": DRAIN_PATH,
            "port": ADMIN_PORT,
            "scheme": "HTTP",
            "httpHeaders": [{"name": DRAIN_TOKEN_HEADER, "value": drain_token}],
        }
    })
}

/// Index of the app container: the one declaring the app port, else the first.
fn app_container_index(pod: &Pod, app_port: i32) -> usize {
    pod.spec
        .as_ref()
        .and_then(|s| {
            s.containers.iter().position(|c| {
                c.ports
                    .iter()
                    .flatten()
                    .any(|p| p.container_port == app_port)
            })
        })
        .unwrap_or(0)
}

/// The patch operation adding the drain hook to the app container, or the warning saying why
/// it was not added.
fn drain_hook(pod: &Pod, app_port: i32, drain_token: &str) -> Result<Value, String> {
    let Some(spec) = pod.spec.as_ref().filter(|s| !s.containers.is_empty()) else {
        return Err("outrigger: the pod has no containers to add the drain hook to".to_owned());
    };
    let ci = app_container_index(pod, app_port);
    let container = &spec.containers[ci];
    match &container.lifecycle {
        Some(l) if l.pre_stop.is_some() => Err(format!(
            "outrigger: container {:?} has its own preStop hook, so outrigger-proxy learns of \
             the pod's termination only after the app exited and cannot drain first; fix: \
             drop the hook (the proxy drains and delays the app's SIGTERM), or call \
             GET http://localhost:{ADMIN_PORT}{DRAIN_PATH} with header {DRAIN_TOKEN_HEADER}: \
             $({DRAIN_TOKEN_ENV} of the proxy) from it",
            container.name
        )),
        Some(_) => Ok(json!({
            "op": "add",
            "path": format!("/spec/containers/{ci}/lifecycle/preStop"),
            "value": app_pre_stop(drain_token),
        })),
        None => Ok(json!({
            "op": "add",
            "path": format!("/spec/containers/{ci}/lifecycle"),
            "value": {"preStop": app_pre_stop(drain_token)},
        })),
    }
}

/// How Service traffic reaches the proxy: the name of its inbound container port, the extra
/// patch operations that free that name on the app container, and what to tell the user.
struct ServiceRouting {
    inbound_name: String,
    ops: Vec<Value>,
    annotations: Vec<(&'static str, String)>,
    warnings: Vec<String>,
}

/// Moves the app port's name to the proxy (see the module docs), or explains why it cannot.
fn service_routing(pod: &Pod, app_port: i32) -> ServiceRouting {
    let declared = pod.spec.as_ref().and_then(|s| {
        s.containers.iter().enumerate().find_map(|(ci, c)| {
            c.ports.as_ref()?.iter().enumerate().find_map(|(pi, p)| {
                let tcp = p.protocol.as_deref().is_none_or(|proto| proto == "TCP");
                (p.container_port == app_port && tcp).then(|| (ci, pi, p.name.clone()))
            })
        })
    });
    match declared {
        Some((ci, pi, Some(name))) if name != ADMIN_PORT_NAME && name != INBOUND_PORT_NAME => {
            let mut ops = vec![
                json!({"op": "remove", "path": format!("/spec/containers/{ci}/ports/{pi}/name")}),
            ];
            if let Some(container) = pod.spec.as_ref().map(|s| &s.containers[ci]) {
                ops.extend(named_port_uses(container, &name, app_port, ci));
            }
            ServiceRouting {
                inbound_name: name.clone(),
                ops,
                annotations: vec![(SERVICE_PORT_ANNOTATION, name)],
                warnings: Vec::new(),
            }
        }
        _ => {
            let why = format!(
                "the app port {app_port} has no name, so Services that target it reach the app \
                 directly and bypass outrigger-proxy; fix: name the container port (for example \
                 `name: http`) and set the Service's targetPort to that name, or target \
                 `{INBOUND_PORT_NAME}` (port {INBOUND_PORT})"
            );
            ServiceRouting {
                inbound_name: INBOUND_PORT_NAME.to_owned(),
                ops: Vec::new(),
                annotations: vec![
                    (SERVICE_PORT_ANNOTATION, INBOUND_PORT_NAME.to_owned()),
                    (ROUTING_ANNOTATION, why.clone()),
                ],
                warnings: vec![format!("outrigger: {why}")],
            }
        }
    }
}

/// Patch operations that rewrite the app container's probes and lifecycle hooks from the port
/// name `name` to its number: once the name belongs to the proxy, kubelet would no longer
/// resolve it in the app container (and the probe must check the app itself, not the proxy).
fn named_port_uses(
    container: &k8s_openapi::api::core::v1::Container,
    name: &str,
    number: i32,
    ci: usize,
) -> Vec<Value> {
    let Ok(doc) = serde_json::to_value(container) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    let handlers = [
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "lifecycle/postStart",
        "lifecycle/preStop",
    ];
    for handler in handlers {
        for action in ["httpGet", "tcpSocket"] {
            let pointer = format!("/{handler}/{action}/port");
            if doc.pointer(&pointer).and_then(Value::as_str) == Some(name) {
                ops.push(json!({
                    "op": "replace",
                    "path": format!("/spec/containers/{ci}{pointer}"),
                    "value": number,
                }));
            }
        }
    }
    ops
}

/// Decide whether and how to inject `pod`, with a fresh drain token.
pub fn decide(pod: &Pod, mode: Mode, proxy: &ProxySpec) -> Result<Decision, InjectError> {
    decide_with_token(pod, mode, proxy, new_drain_token)
}

/// [`decide`] with the token from `token` (called only when the pod is injected).
pub fn decide_with_token(
    pod: &Pod,
    mode: Mode,
    proxy: &ProxySpec,
    token: impl FnOnce() -> Result<String, InjectError>,
) -> Result<Decision, InjectError> {
    match (annotation(pod, INJECT_ANNOTATION), mode) {
        (Some("disabled"), _) => return Ok(Decision::Skip(SkipReason::Disabled)),
        (Some("enabled"), _) | (_, Mode::Namespace) => {}
        (_, Mode::PodOptIn) => return Ok(Decision::Skip(SkipReason::NotEnabled)),
    }
    if annotation(pod, INJECTED_ANNOTATION).is_some() || has_proxy(pod) {
        return Ok(Decision::Skip(SkipReason::AlreadyInjected));
    }
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return Ok(Decision::Skip(SkipReason::HostNetwork));
    }
    let port = app_port(pod)?;
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let drain_token = token()?;
    let routing = service_routing(pod, port);
    let mut sidecar = container(proxy, port, grace, &drain_token);
    sidecar["ports"][0]["name"] = Value::String(routing.inbound_name);
    let mut ops = patch_ops(pod, &sidecar, routing.annotations);
    ops.extend(routing.ops);
    let mut warnings = routing.warnings;
    match drain_hook(pod, port, &drain_token) {
        Ok(op) => ops.push(op),
        Err(warning) => warnings.push(warning),
    }
    Ok(Decision::Inject(to_patch(ops), warnings))
}

/// The sidecar container, as the library chart renders it.
pub fn container(proxy: &ProxySpec, app_port: i32, grace_seconds: i64, drain_token: &str) -> Value {
    let mut env = vec![
        json!({"name": "OUTRIGGER_INBOUND", "value": format!("0.0.0.0:{INBOUND_PORT}")}),
        json!({"name": "OUTRIGGER_APP", "value": format!("127.0.0.1:{app_port}")}),
        json!({"name": "OUTRIGGER_ADMIN", "value": format!("0.0.0.0:{ADMIN_PORT}")}),
        json!({"name": "OUTRIGGER_LOG", "value": proxy.log}),
        json!({"name": "OUTRIGGER_TERMINATION_GRACE_PERIOD", "value": grace_seconds.to_string()}),
    ];
    if !proxy.drain_delay.is_empty() {
        env.push(json!({"name": "OUTRIGGER_DRAIN_DELAY", "value": proxy.drain_delay}));
    }
    if !proxy.drain_timeout.is_empty() {
        env.push(json!({"name": "OUTRIGGER_DRAIN_TIMEOUT", "value": proxy.drain_timeout}));
    }
    env.push(json!({"name": DRAIN_TOKEN_ENV, "value": drain_token}));
    let mut requests = serde_json::Map::new();
    requests.insert("cpu".into(), json!(proxy.cpu_request));
    requests.insert("memory".into(), json!(proxy.memory_request));
    let mut limits = serde_json::Map::new();
    if !proxy.cpu_limit.is_empty() {
        limits.insert("cpu".into(), json!(proxy.cpu_limit));
    }
    if !proxy.memory_limit.is_empty() {
        limits.insert("memory".into(), json!(proxy.memory_limit));
    }
    let mut resources = json!({ "requests": requests });
    if !limits.is_empty() {
        resources["limits"] = Value::Object(limits);
    }
    json!({
        "name": CONTAINER_NAME,
        "image": proxy.image,
        "imagePullPolicy": proxy.pull_policy,
        // Native sidecar: started (and startup-probed) before the app, stopped after it.
        "restartPolicy": "Always",
        "env": env,
        "ports": [
            {"name": INBOUND_PORT_NAME, "containerPort": INBOUND_PORT, "protocol": "TCP"},
            {"name": ADMIN_PORT_NAME, "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "startupProbe": {
            "httpGet": {"path": "/live", "port": ADMIN_PORT_NAME},
            "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": ADMIN_PORT_NAME},
            "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": ADMIN_PORT_NAME},
            "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3,
        },
        "resources": resources,
        // Pod Security "restricted" compliant on its own, whatever the pod sets.
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    })
}

/// JSON Pointer escaping (RFC 6901) for one path segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// JSONPatch adding `sidecar` as the first init container and the injected annotation.
pub fn patch(pod: &Pod, sidecar: &Value) -> json_patch::Patch {
    to_patch(patch_ops(pod, sidecar, Vec::new()))
}

/// The operations of [`patch`], plus `extra` annotations.
fn patch_ops(pod: &Pod, sidecar: &Value, extra: Vec<(&'static str, String)>) -> Vec<Value> {
    let mut ops = Vec::with_capacity(8);
    let has_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| !c.is_empty());
    if has_init {
        // First, so it is up before other init containers that may need the network.
        ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}));
    } else {
        ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]}));
    }
    // The injected marker plus the annotations the library chart puts on meshed pods, so tools
    // that read them see an injected pod exactly like a chart-rendered one.
    let mut annotations = vec![
        (INJECTED_ANNOTATION, env!("CARGO_PKG_VERSION").to_owned()),
        ("outrigger.dev/proxy", "enabled".to_owned()),
        ("outrigger.dev/inbound-port", INBOUND_PORT.to_string()),
        ("outrigger.dev/admin-port", ADMIN_PORT.to_string()),
    ];
    annotations.extend(extra);
    if pod.metadata.annotations.is_some() {
        for (key, value) in annotations {
            ops.push(json!({
                "op": "add",
                "path": format!("/metadata/annotations/{}", escape(key)),
                "value": value,
            }));
        }
    } else {
        let map: serde_json::Map<String, Value> = annotations
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
    }
    ops
}

fn to_patch(ops: Vec<Value>) -> json_patch::Patch {
    // The ops are well-formed by construction; an empty patch is the safe fallback.
    serde_json::from_value(Value::Array(ops)).unwrap_or_else(|_| json_patch::Patch(Vec::new()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn apply(p: &Pod, d: &Decision) -> Value {
        let Decision::Inject(patch, _) = d else {
            panic!("expected injection, got {d:?}")
        };
        let mut doc = serde_json::to_value(p).unwrap();
        json_patch::patch(&mut doc, patch).unwrap();
        doc
    }

    fn web(annotations: Option<Value>) -> Pod {
        let mut meta = json!({"name": "web"});
        if let Some(a) = annotations {
            meta["annotations"] = a;
        }
        pod(json!({
            "metadata": meta,
            "spec": {
                "terminationGracePeriodSeconds": 45,
                "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 5000}]}],
            }
        }))
    }

    fn env(doc: &Value, name: &str) -> Option<String> {
        doc["spec"]["initContainers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    }

    #[test]
    fn pod_opt_in_injects_first_init_container() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let d = decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap();
        let doc = apply(&p, &d);
        let c = &doc["spec"]["initContainers"][0];
        assert_eq!(c["name"], "outrigger-proxy");
        assert_eq!(c["restartPolicy"], "Always");
        assert_eq!(c["ports"][0]["containerPort"], 4143);
        assert_eq!(c["ports"][0]["name"], "outrigger");
        assert_eq!(
            doc["metadata"]["annotations"]["outrigger.dev/inbound-port"],
            "4143"
        );
        assert_eq!(c["ports"][1]["name"], "outrigger-admin");
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        assert_eq!(env(&doc, "OUTRIGGER_APP").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            env(&doc, "OUTRIGGER_TERMINATION_GRACE_PERIOD").unwrap(),
            "45"
        );
        assert_eq!(env(&doc, "OUTRIGGER_DRAIN_DELAY"), None);
        assert_eq!(
            doc["metadata"]["annotations"]["outrigger.io/injected"],
            env!("CARGO_PKG_VERSION")
        );
        // The original annotation survives.
        assert_eq!(
            doc["metadata"]["annotations"]["outrigger.io/inject"],
            "enabled"
        );
        // The result still deserializes as a Pod (the API server will decode it).
        let back: Pod = serde_json::from_value(doc).unwrap();
        assert_eq!(back.spec.unwrap().init_containers.unwrap().len(), 1);
    }

    #[test]
    fn not_annotated_is_skipped_in_pod_mode_but_injected_in_namespace_mode() {
        let p = web(None);
        assert_eq!(
            decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
            Decision::Skip(SkipReason::NotEnabled)
        );
        let doc = apply(
            &p,
            &decide(&p, Mode::Namespace, &ProxySpec::default()).unwrap(),
        );
        assert_eq!(
            doc["metadata"]["annotations"]["outrigger.io/injected"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(doc["spec"]["initContainers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn disabled_wins_in_both_modes() {
        let p = web(Some(json!({"outrigger.io/inject": "disabled"})));
        for mode in [Mode::PodOptIn, Mode::Namespace] {
            assert_eq!(
                decide(&p, mode, &ProxySpec::default()).unwrap(),
                Decision::Skip(SkipReason::Disabled)
            );
        }
    }

    #[test]
    fn idempotent_on_reinvocation() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let once = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        let again = pod(once);
        assert_eq!(
            decide(&again, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
            Decision::Skip(SkipReason::AlreadyInjected)
        );
        // A pod that already runs the proxy (library chart) without the annotation.
        let by_hand = pod(json!({
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "outrigger-proxy"}]}
        }));
        assert_eq!(
            decide(&by_hand, Mode::Namespace, &ProxySpec::default()).unwrap(),
            Decision::Skip(SkipReason::AlreadyInjected)
        );
    }

    #[test]
    fn existing_init_containers_keep_order_after_the_proxy() {
        let p = pod(json!({
            "metadata": {"name": "x", "annotations": {"outrigger.io/inject": "enabled", "a~/b": "1"}},
            "spec": {
                "initContainers": [{"name": "migrate"}],
                "containers": [{"name": "app"}],
            }
        }));
        let doc = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        let names: Vec<_> = doc["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["outrigger-proxy", "migrate"]);
        // No ports anywhere and no grace period: defaults.
        assert_eq!(env(&doc, "OUTRIGGER_APP").unwrap(), "127.0.0.1:8080");
        assert_eq!(
            env(&doc, "OUTRIGGER_TERMINATION_GRACE_PERIOD").unwrap(),
            "30"
        );
        assert_eq!(doc["metadata"]["annotations"]["a~/b"], "1");
    }

    #[test]
    fn app_port_annotation_and_validation() {
        let p = web(Some(
            json!({"outrigger.io/inject": "enabled", "outrigger.io/app-port": "9000"}),
        ));
        let doc = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        assert_eq!(env(&doc, "OUTRIGGER_APP").unwrap(), "127.0.0.1:9000");
        for bad in ["http", "0", "70000", "-1"] {
            let p = web(Some(
                json!({"outrigger.io/inject": "enabled", "outrigger.io/app-port": bad}),
            ));
            assert_eq!(
                decide(&p, Mode::PodOptIn, &ProxySpec::default()),
                Err(InjectError::BadAppPort(bad.to_owned()))
            );
        }
    }

    #[test]
    fn host_network_is_skipped() {
        let p = pod(json!({
            "metadata": {"name": "x"},
            "spec": {"hostNetwork": true, "containers": [{"name": "app"}]}
        }));
        assert_eq!(
            decide(&p, Mode::Namespace, &ProxySpec::default()).unwrap(),
            Decision::Skip(SkipReason::HostNetwork)
        );
    }

    #[test]
    fn resources_and_drain_settings_follow_the_spec() {
        let spec = ProxySpec {
            cpu_limit: "500m".into(),
            memory_limit: String::new(),
            drain_delay: "3s".into(),
            drain_timeout: "20s".into(),
            image: "registry.example/proxy@sha256:abc".into(),
            ..ProxySpec::default()
        };
        let c = container(&spec, 8000, 30, "t0123456789abcdef");
        assert_eq!(c["image"], "registry.example/proxy@sha256:abc");
        assert_eq!(c["resources"]["limits"], json!({"cpu": "500m"}));
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "20m", "memory": "32Mi"})
        );
        let env = c["env"].as_array().unwrap();
        assert!(env.contains(&json!({"name": "OUTRIGGER_DRAIN_DELAY", "value": "3s"})));
        assert!(env.contains(&json!({"name": "OUTRIGGER_DRAIN_TIMEOUT", "value": "20s"})));
    }

    fn named_app(probe_port: &Value) -> Pod {
        pod(json!({
            "metadata": {"name": "web", "annotations": {"outrigger.io/inject": "enabled"}},
            "spec": {"containers": [
                {"name": "app", "image": "app:1",
                 "ports": [{"name": "metrics", "containerPort": 9090},
                           {"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": probe_port}},
                 "livenessProbe": {"tcpSocket": {"port": "http"}},
                 "lifecycle": {"preStop": {"httpGet": {"path": "/stop", "port": "metrics"}}}},
            ]}
        }))
    }

    #[test]
    fn a_named_app_port_moves_to_the_proxy_so_services_reach_it_by_name() {
        let mut p = named_app(&json!("http"));
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(APP_PORT_ANNOTATION.into(), "8080".into());
        let d = decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap();
        let Decision::Inject(_, warnings) = &d else {
            panic!("{d:?}")
        };
        // The only warning: the app's own preStop hook stays, so no drain hook is added.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("own preStop hook"), "{warnings:?}");
        let doc = apply(&p, &d);
        let proxy = &doc["spec"]["initContainers"][0];
        assert_eq!(proxy["ports"][0]["name"], "http");
        assert_eq!(proxy["ports"][0]["containerPort"], 4143);
        assert_eq!(proxy["ports"][1]["name"], "outrigger-admin");
        let app = &doc["spec"]["containers"][0];
        // The app keeps the port number; only its name moved. Other names stay.
        assert_eq!(app["ports"][1], json!({"containerPort": 8080}));
        assert_eq!(app["ports"][0]["name"], "metrics");
        // Probes that used the moved name now use the number (they still check the app).
        assert_eq!(app["readinessProbe"]["httpGet"]["port"], 8080);
        assert_eq!(app["livenessProbe"]["tcpSocket"]["port"], 8080);
        assert_eq!(app["lifecycle"]["preStop"]["httpGet"]["port"], "metrics");
        assert_eq!(
            doc["metadata"]["annotations"][SERVICE_PORT_ANNOTATION],
            "http"
        );
        assert!(
            doc["metadata"]["annotations"]
                .get(ROUTING_ANNOTATION)
                .is_none()
        );
        // Every container port name in the pod is still unique.
        let mut names: Vec<&str> = doc["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(doc["spec"]["initContainers"].as_array().unwrap())
            .flat_map(|c| c["ports"].as_array().unwrap())
            .filter_map(|p| p["name"].as_str())
            .collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "{names:?}");
    }

    #[test]
    fn a_numeric_probe_port_is_left_alone() {
        let mut p = named_app(&json!(8080));
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(APP_PORT_ANNOTATION.into(), "8080".into());
        let doc = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        assert_eq!(
            doc["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
            8080
        );
    }

    #[test]
    fn an_unnamed_app_port_is_reported_with_the_fix() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let d = decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap();
        let Decision::Inject(_, warnings) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("app port 5000 has no name"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("targetPort"), "{warnings:?}");
        let doc = apply(&p, &d);
        assert_eq!(
            doc["spec"]["initContainers"][0]["ports"][0]["name"],
            "outrigger"
        );
        let why = doc["metadata"]["annotations"][ROUTING_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(why.contains("bypass outrigger-proxy"), "{why}");
        assert_eq!(
            doc["metadata"]["annotations"][SERVICE_PORT_ANNOTATION],
            "outrigger"
        );
    }

    fn pre_stop_token(doc: &Value, ci: usize) -> String {
        let hook = &doc["spec"]["containers"][ci]["lifecycle"]["preStop"]["httpGet"];
        assert_eq!(hook["path"], "/drain");
        assert_eq!(hook["port"], 4191);
        assert_eq!(hook["httpHeaders"][0]["name"], DRAIN_TOKEN_HEADER);
        hook["httpHeaders"][0]["value"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_app_gets_a_drain_hook_with_a_fresh_per_pod_token() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let doc = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        let token = pre_stop_token(&doc, 0);
        assert_eq!(token.len(), 64, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        // The proxy holds the same token.
        assert_eq!(env(&doc, DRAIN_TOKEN_ENV).unwrap(), token);
        // Another pod, another token.
        let other = apply(
            &p,
            &decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
        );
        assert_ne!(pre_stop_token(&other, 0), token);
        // Still a Pod the API server decodes.
        let back: Pod = serde_json::from_value(doc).unwrap();
        assert!(back.spec.unwrap().containers[0].lifecycle.is_some());
    }

    #[test]
    fn the_hook_goes_to_the_container_with_the_app_port_beside_other_hooks() {
        let p = pod(json!({
            "metadata": {"name": "x", "annotations": {"outrigger.io/inject": "enabled", "outrigger.io/app-port": "8080"}},
            "spec": {"containers": [
                {"name": "helper", "image": "h:1"},
                {"name": "app", "image": "a:1", "ports": [{"name": "http", "containerPort": 8080}],
                 "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}},
            ]}
        }));
        let d = decide_with_token(&p, Mode::PodOptIn, &ProxySpec::default(), || {
            Ok("fixed-token-0123456789".into())
        })
        .unwrap();
        let Decision::Inject(_, warnings) = &d else {
            panic!("{d:?}")
        };
        assert!(warnings.is_empty(), "{warnings:?}");
        let doc = apply(&p, &d);
        assert_eq!(pre_stop_token(&doc, 1), "fixed-token-0123456789");
        assert_eq!(
            doc["spec"]["containers"][1]["lifecycle"]["postStart"]["exec"]["command"][0],
            "true"
        );
        assert!(doc["spec"]["containers"][0].get("lifecycle").is_none());
    }

    #[test]
    fn an_own_pre_stop_hook_is_kept_and_reported() {
        let p = pod(json!({
            "metadata": {"name": "x", "annotations": {"outrigger.io/inject": "enabled"}},
            "spec": {"containers": [
                {"name": "app", "image": "a:1", "ports": [{"name": "http", "containerPort": 8080}],
                 "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}},
            ]}
        }));
        let d = decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap();
        let Decision::Inject(_, warnings) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("\"app\" has its own preStop"),
            "{warnings:?}"
        );
        let doc = apply(&p, &d);
        assert_eq!(
            doc["spec"]["containers"][0]["lifecycle"]["preStop"],
            json!({"sleep": {"seconds": 5}})
        );
        // The proxy still gets a token (a hook added by hand can use it).
        assert_eq!(env(&doc, DRAIN_TOKEN_ENV).unwrap().len(), 64);
    }

    #[test]
    fn no_random_bytes_admits_the_pod_unchanged() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let e = decide_with_token(&p, Mode::PodOptIn, &ProxySpec::default(), || {
            Err(InjectError::NoRandom("test".into()))
        })
        .unwrap_err();
        assert_eq!(e.reason(), "no_random");
        // Skipped pods never ask for randomness.
        let skipped = web(None);
        assert_eq!(
            decide_with_token(&skipped, Mode::PodOptIn, &ProxySpec::default(), || {
                panic!("asked for a token")
            })
            .unwrap(),
            Decision::Skip(SkipReason::NotEnabled)
        );
    }
}
