//! Service routing: a Service reaches a pod through a container port, by name or by number.
//! Without privileges (no iptables redirect, Pod Security "restricted") the only way to put the
//! proxy on that path is by name: when the app's port is named (say `http`), the name moves from
//! the app's port to the proxy's inbound port, so every Service with `targetPort: http` now
//! resolves to 4143 and the proxy forwards to the app on loopback. The app's own probes and
//! lifecycle hooks that used the name are rewritten to the number, so they still reach the app
//! directly. An unnamed app port cannot be moved: the pod gets an admission warning and an
//! annotation saying how to fix it (name the port, target it by name).
//!
//! It also owns finding the app container (the one declaring the app port), which the drain hook
//! goes to as well.

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod};
use serde_json::{Value, json};

use super::{
    ADMIN_PORT_NAME, INBOUND_PORT, INBOUND_PORT_NAME, ROUTING_ANNOTATION, SERVICE_PORT_ANNOTATION,
};

/// Every container port declaring `app_port`, in pod order: (container index, port index, port).
fn app_port_declarations(
    pod: &Pod,
    app_port: i32,
) -> impl Iterator<Item = (usize, usize, &ContainerPort)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter().enumerate())
        .flat_map(|(ci, c)| {
            c.ports
                .iter()
                .flatten()
                .enumerate()
                .map(move |(pi, p)| (ci, pi, p))
        })
        .filter(move |(_, _, p)| p.container_port == app_port)
}

/// Index of the app container: the first declaring the app port (any protocol), else the first.
pub(super) fn app_container_index(pod: &Pod, app_port: i32) -> usize {
    app_port_declarations(pod, app_port)
        .next()
        .map_or(0, |(ci, _, _)| ci)
}

/// How Service traffic reaches the proxy: the name of its inbound container port, the extra
/// patch operations that free that name on the app container, and what to tell the user.
pub(super) struct ServiceRouting {
    pub(super) inbound_name: String,
    pub(super) ops: Vec<Value>,
    pub(super) annotations: Vec<(&'static str, String)>,
    pub(super) warnings: Vec<String>,
}

/// Moves the app port's name to the proxy (see the module docs), or explains why it cannot.
pub(super) fn service_routing(pod: &Pod, app_port: i32) -> ServiceRouting {
    let declared = app_port_declarations(pod, app_port)
        .find(|(_, _, p)| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .map(|(ci, pi, p)| (ci, pi, p.name.clone()));
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
fn named_port_uses(container: &Container, name: &str, number: i32, ci: usize) -> Vec<Value> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::fixtures::{apply, injected, pod, warnings, web};
    use super::super::{APP_PORT_ANNOTATION, Mode, decide};
    use super::*;
    use crate::config::ProxySpec;

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
        let warnings = warnings(&d);
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
        let doc = injected(&p);
        assert_eq!(
            doc["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
            8080
        );
    }

    #[test]
    fn an_unnamed_app_port_is_reported_with_the_fix() {
        let p = web(Some(json!({"outrigger.io/inject": "enabled"})));
        let d = decide(&p, Mode::PodOptIn, &ProxySpec::default()).unwrap();
        let warnings = warnings(&d);
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
}
