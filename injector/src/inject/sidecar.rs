//! The injected container, rendered exactly as the library chart's
//! `charts/outrigger-sidecar/templates/_container.tpl` renders it (same name, ports, env, probes,
//! securityContext) so injected and Helm-templated sidecars are indistinguishable, and the
//! JSONPatch that adds it as the pod's first init container with the chart's annotations.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::{
    ADMIN_PORT, ADMIN_PORT_NAME, CONTAINER_NAME, DRAIN_TOKEN_ENV, INBOUND_PORT, INBOUND_PORT_NAME,
    INJECTED_ANNOTATION,
};
use crate::config::ProxySpec;

/// The sidecar container, as the library chart renders it.
pub fn container(proxy: &ProxySpec, app_port: i32, grace_seconds: i64, drain_token: &str) -> Value {
    let mut env = vec![
        json!({"name": "OUTRIGGER_INBOUND", "value": format!("0.0.0.0:{INBOUND_PORT}")}),
        json!({"name": "OUTRIGGER_APP", "value": format!("127.0.0.1:{app_port}")}),
        json!({"name": "OUTRIGGER_ADMIN", "value": format!("0.0.0.0:{ADMIN_PORT}")}),
        json!({"name": "OUTRIGGER_LOG", "value": proxy.log}),
    ];
    if proxy.workers != "auto" {
        env.push(json!({"name": "OUTRIGGER_WORKERS", "value": proxy.workers}));
    }
    env.push(
        json!({"name": "OUTRIGGER_TERMINATION_GRACE_PERIOD", "value": grace_seconds.to_string()}),
    );
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
pub(super) fn patch_ops(
    pod: &Pod,
    sidecar: &Value,
    extra: Vec<(&'static str, String)>,
) -> Vec<Value> {
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

pub(super) fn to_patch(ops: Vec<Value>) -> json_patch::Patch {
    // The ops are well-formed by construction; an empty patch is the safe fallback.
    serde_json::from_value(Value::Array(ops)).unwrap_or_else(|_| json_patch::Patch(Vec::new()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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

    fn workers_env(spec: &ProxySpec) -> Vec<Value> {
        let c = container(spec, 8000, 30, "t0123456789abcdef");
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "OUTRIGGER_WORKERS")
            .cloned()
            .collect()
    }

    #[test]
    fn one_worker_unless_auto() {
        assert_eq!(
            workers_env(&ProxySpec::default()),
            [json!({"name": "OUTRIGGER_WORKERS", "value": "1"})]
        );
        let two = ProxySpec {
            workers: "2".into(),
            ..ProxySpec::default()
        };
        assert_eq!(
            workers_env(&two),
            [json!({"name": "OUTRIGGER_WORKERS", "value": "2"})]
        );
        let auto = ProxySpec {
            workers: "auto".into(),
            ..ProxySpec::default()
        };
        assert!(workers_env(&auto).is_empty());
    }
}
