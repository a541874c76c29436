//! The injection decision and the JSONPatch that adds outrigger-proxy to a pod.
//!
//! Pure functions over a `Pod`: no I/O, so every rule is unit-tested. This module owns the
//! decision (which pods, which app port) and the names and ports the injected pod shares with the
//! library chart; the parts of the patch live beside it: [`sidecar`] (the container and the
//! patch that adds it), [`service_routing`] (moving the app port's name to the proxy) and
//! [`drain`] (the app's preStop hook that drains the proxy first).

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::config::ProxySpec;

pub mod drain;
#[cfg(test)]
mod fixtures;
pub mod service_routing;
pub mod sidecar;

pub use drain::{app_pre_stop, new_drain_token};
pub use sidecar::{container, patch};

use drain::drain_hook;
use service_routing::service_routing;
use sidecar::{patch_ops, to_patch};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::fixtures::{apply, env, injected, pod, web};
    use super::*;

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
        let once = injected(&p);
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
        let doc = injected(&p);
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
        let doc = injected(&p);
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
}
