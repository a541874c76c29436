//! Drain on termination: the kubelet sends a native sidecar SIGTERM only after the app exited,
//! too late to leave the endpoints gracefully. So the app container gets a `preStop` `httpGet` to
//! the proxy's admin port, path `/drain` (main containers' preStop hooks run first, and the app's
//! SIGTERM waits for them), which starts the proxy's drain and answers once the drain delay is
//! over. `/drain` needs a per-pod token: any pod can reach the admin port. Each injected pod gets
//! a fresh random token, in the proxy's `OUTRIGGER_PROXY_DRAIN_TOKEN` and in the hook's
//! `X-Outrigger-Drain-Token` header. An app container with its own preStop hook keeps it (a
//! container has one); the pod gets a warning saying what that costs.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::service_routing::app_container_index;
use super::{ADMIN_PORT, DRAIN_PATH, DRAIN_TOKEN_ENV, DRAIN_TOKEN_HEADER, InjectError};

/// Random bytes per token (hex-encoded: 64 characters).
const DRAIN_TOKEN_BYTES: usize = 32;

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

/// The patch operation adding the drain hook to the app container, or the warning saying why
/// it was not added.
pub(super) fn drain_hook(pod: &Pod, app_port: i32, drain_token: &str) -> Result<Value, String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::fixtures::{apply, env, injected, pod, warnings, web};
    use super::super::{Decision, Mode, SkipReason, decide, decide_with_token};
    use super::*;
    use crate::config::ProxySpec;

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
        let doc = injected(&p);
        let token = pre_stop_token(&doc, 0);
        assert_eq!(token.len(), 64, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        // The proxy holds the same token.
        assert_eq!(env(&doc, DRAIN_TOKEN_ENV).unwrap(), token);
        // Another pod, another token.
        let other = injected(&p);
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
        let warnings = warnings(&d);
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
        let warnings = warnings(&d);
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
