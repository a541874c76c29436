//! The injector behind a real kube-apiserver (scripts/kube-test-env.sh: Debian etcd + the
//! pinned kube-apiserver, loopback only). A MutatingWebhookConfiguration points at the real
//! binary over TLS with the test CA as caBundle; pods are created through the API and read
//! back. Proves: the API server accepts our review responses and patches, injected pods pass
//! Pod Security "restricted" enforcement, opt-out works, and with the injector down pods are
//! still admitted (failurePolicy Ignore).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    clippy::float_cmp
)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Injector, Pki, sample, scrape};
use outrigger_test_support::KubeTestEnv;
use serde_json::{Value, json};

/// The kube test env (outrigger_test_support::KubeTestEnv) with this test's API helpers.
struct KubeEnv(KubeTestEnv);

impl KubeEnv {
    fn start() -> Option<Self> {
        KubeTestEnv::start().map(Self)
    }

    /// Creates `pod` in namespace `ns` (201 expected) and reads it back as the API server stored
    /// it (after admission).
    fn create_pod(&self, ns: &str, pod: &Value) -> Value {
        let (code, body) = self.api("POST", &format!("/api/v1/namespaces/{ns}/pods"), Some(pod));
        assert_eq!(code, 201, "{body}");
        let name = pod["metadata"]["name"].as_str().unwrap();
        let (code, stored) = self.api("GET", &format!("/api/v1/namespaces/{ns}/pods/{name}"), None);
        assert_eq!(code, 200, "{stored}");
        stored
    }

    /// One API call with the admin client certificate; returns (status, JSON body).
    fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.0
            .api(method, path, body.map(Value::to_string).as_deref())
    }

    /// POST `body` and return (status, the API server's `Warning` header values).
    fn create_warnings(&self, path: &str, body: &Value) -> (u16, Vec<String>) {
        let out = self
            .0
            .curl("POST")
            .args(["-o", "/dev/null", "-D", "-"])
            .args(["--data-binary", &body.to_string()])
            .arg(format!("{}{path}", self.0.url()))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let warnings = head
            .lines()
            .filter_map(|l| {
                l.strip_prefix("Warning: ")
                    .or_else(|| l.strip_prefix("warning: "))
            })
            .map(|w| w.trim().to_owned())
            .collect();
        (code, warnings)
    }
}

/// The chart's webhook configuration as the chart renders it (used when helm is missing).
fn fallback_config() -> Value {
    let selector = |op: &str| {
        json!({"matchExpressions": [
            {"key": "outrigger.io/inject", "operator": op, "values": ["enabled"]},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["outrigger-system", "kube-system"]},
        ]})
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "outrigger-injector"},
        "webhooks": [
            webhook("pods.injector.outrigger.io", "/mutate", selector("NotIn")),
            webhook("namespaces.injector.outrigger.io", "/mutate/namespace", selector("In")),
        ],
    })
}

fn webhook(name: &str, path: &str, namespace_selector: Value) -> Value {
    json!({
        "name": name,
        "clientConfig": {"service": {"name": "outrigger-injector", "namespace": "outrigger-system", "path": path}},
        "rules": [{
            "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods"], "scope": "Namespaced",
        }],
        "namespaceSelector": namespace_selector,
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "reinvocationPolicy": "IfNeeded",
        "timeoutSeconds": 5,
        "admissionReviewVersions": ["v1"],
    })
}

/// A pod that passes Pod Security "restricted" on its own.
fn restricted_pod(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app", "image": "registry.test/app:1",
                "ports": [{"containerPort": 8000}],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        }
    })
}

fn init_names(pod: &Value) -> Vec<String> {
    pod["spec"]["initContainers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn injects_through_a_real_api_server() {
    if outrigger_test_support::require_tool("kube-apiserver").is_none()
        || outrigger_test_support::require_tool("etcd").is_none()
    {
        return;
    }
    let pki = Pki::new();
    let mut injector = Injector::start(
        &pki,
        &["--proxy-image", "registry.test/outrigger-proxy:0.1.0"],
    );
    let Some(kube) = KubeEnv::start() else {
        return;
    };

    let ca = base64::engine::general_purpose::STANDARD.encode(pki.ca.pem());
    let base = format!("https://127.0.0.1:{}", injector.webhook.port());
    // The chart's own MutatingWebhookConfiguration (selectors, policies, paths), pointed at the
    // local binary by URL instead of the in-cluster Service, with the test CA as caBundle.
    let mut config = common::helm_render(&[
        "--set",
        "injector.enabled=true",
        "--show-only",
        "templates/injector-webhook.yaml",
    ])
    .map_or_else(fallback_config, |docs| {
        docs.into_iter()
            .next()
            .expect("one MutatingWebhookConfiguration")
    });
    assert_eq!(config["kind"], "MutatingWebhookConfiguration");
    config["metadata"] = json!({"name": "outrigger-injector-test"});
    for w in config["webhooks"].as_array_mut().unwrap() {
        assert_eq!(w["failurePolicy"], "Ignore");
        assert_eq!(w["sideEffects"], "None");
        let path = w["clientConfig"]["service"]["path"]
            .as_str()
            .unwrap()
            .to_owned();
        w["clientConfig"] = json!({"url": format!("{base}{path}"), "caBundle": ca});
    }
    let (code, body) = kube.api(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        Some(&config),
    );
    assert_eq!(code, 201, "{body}");
    for (ns, inject) in [
        ("meshed", true),
        ("plain", false),
        ("outrigger-system", true),
    ] {
        let mut labels = json!({"pod-security.kubernetes.io/enforce": "restricted"});
        if inject {
            labels["outrigger.io/inject"] = json!("enabled");
        }
        let (code, body) = kube.api(
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})),
        );
        assert_eq!(code, 201, "{body}");
    }

    // The API server picks webhook configurations up asynchronously: dry-run creates (which
    // still call side-effect-free webhooks) until the sidecar shows up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, pod) = kube.api(
            "POST",
            "/api/v1/namespaces/meshed/pods?dryRun=All",
            Some(&restricted_pod("probe", json!({}))),
        );
        assert_eq!(code, 201, "{pod}");
        if init_names(&pod) == ["outrigger-proxy"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never became active: {pod}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Namespace opt-in: created, read back with the sidecar, restricted admission passed.
    let pod = kube.create_pod("meshed", &restricted_pod("web", json!({})));
    assert_eq!(init_names(&pod), ["outrigger-proxy"]);
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["image"], "registry.test/outrigger-proxy:0.1.0");
    assert_eq!(sidecar["ports"][0]["containerPort"], 4143);
    assert_eq!(sidecar["ports"][1]["containerPort"], 4191);
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/live");
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/ready");
    let env = sidecar["env"].as_array().unwrap();
    assert!(
        env.contains(&json!({"name": "OUTRIGGER_APP", "value": "127.0.0.1:8000"})),
        "{sidecar}"
    );
    // The API server defaulted terminationGracePeriodSeconds to 30 before calling us.
    assert!(env.contains(&json!({"name": "OUTRIGGER_TERMINATION_GRACE_PERIOD", "value": "30"})));
    assert_eq!(
        pod["metadata"]["annotations"]["outrigger.io/injected"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(pod["spec"]["containers"][0]["name"], "app");
    // The app's preStop hook asks the proxy to drain, with the pod's own token (the API server
    // validated the httpGet handler and kept the header).
    let hook = &pod["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"];
    assert_eq!(hook["path"], "/drain", "{pod}");
    assert_eq!(hook["port"], 4191);
    assert_eq!(hook["httpHeaders"][0]["name"], "X-Outrigger-Drain-Token");
    let token = hook["httpHeaders"][0]["value"].as_str().unwrap();
    assert_eq!(token.len(), 64, "{token}");
    assert!(
        env.contains(&json!({"name": "OUTRIGGER_PROXY_DRAIN_TOKEN", "value": token})),
        "{sidecar}"
    );

    // Service routing: the app's named port moves to the proxy, so a Service with
    // `targetPort: http` reaches the proxy; the API server's own validation (unique port names,
    // probes that resolve) accepts the patched pod, and the app's probe now uses the number.
    let mut named = restricted_pod("named", json!({}));
    named["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 8000}]);
    named["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/readyz", "port": "http"}});
    let (code, warnings) = kube.create_warnings("/api/v1/namespaces/meshed/pods", &named);
    assert_eq!(code, 201, "{warnings:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, pod) = kube.api("GET", "/api/v1/namespaces/meshed/pods/named", None);
    assert_eq!(pod["spec"]["initContainers"][0]["ports"][0]["name"], "http");
    assert_eq!(
        pod["spec"]["initContainers"][0]["ports"][0]["containerPort"],
        4143
    );
    assert!(
        pod["spec"]["containers"][0]["ports"][0]
            .get("name")
            .is_none(),
        "{pod}"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
        8000
    );
    // An unnamed app port cannot be moved: the client is warned, with the fix.
    let (code, warnings) = kube.create_warnings(
        "/api/v1/namespaces/meshed/pods",
        &restricted_pod("unnamed", json!({})),
    );
    assert_eq!(code, 201);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("app port 8000 has no name") && w.contains("targetPort")),
        "{warnings:?}"
    );

    // Restricted enforcement is really on in that namespace: a non-compliant app is refused
    // even with a compliant sidecar injected.
    let mut loose = restricted_pod("loose", json!({}));
    loose["spec"]["containers"][0]["securityContext"] = json!({});
    let (code, body) = kube.api("POST", "/api/v1/namespaces/meshed/pods", Some(&loose));
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("restricted"),
        "{body}"
    );

    // Opt-out in an injecting namespace: untouched.
    let pod = kube.create_pod(
        "meshed",
        &restricted_pod("opted-out", json!({"outrigger.io/inject": "disabled"})),
    );
    assert!(init_names(&pod).is_empty(), "{pod}");
    assert!(
        pod["metadata"]["annotations"]
            .get("outrigger.io/injected")
            .is_none()
    );

    // Pod opt-in in a namespace without the label; and a pod there without the annotation.
    let pod = kube.create_pod(
        "plain",
        &restricted_pod(
            "annotated",
            json!({"outrigger.io/inject": "enabled", "outrigger.io/app-port": "9000"}),
        ),
    );
    assert_eq!(init_names(&pod), ["outrigger-proxy"]);
    assert!(
        pod["spec"]["initContainers"][0]["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "OUTRIGGER_APP", "value": "127.0.0.1:9000"}))
    );
    let pod = kube.create_pod("plain", &restricted_pod("bare", json!({})));
    assert!(init_names(&pod).is_empty(), "{pod}");

    // The release namespace is never injected, even when labelled and annotated.
    let (code, body) = kube.api(
        "POST",
        "/api/v1/namespaces/outrigger-system/pods",
        Some(&restricted_pod(
            "own",
            json!({"outrigger.io/inject": "enabled"}),
        )),
    );
    assert_eq!(code, 201, "{body}");
    assert!(init_names(&body).is_empty(), "{body}");

    let text = scrape(injector.admin);
    let injected = sample(
        &text,
        r#"outrigger_injector_admissions_total{result="injected",reason="none"}"#,
    )
    .unwrap_or(0.0);
    // web + annotated, plus at least one dry-run probe; reinvocations are skipped, not re-injected.
    assert!(injected >= 3.0, "{text}");
    assert!(
        sample(
            &text,
            r#"outrigger_injector_admissions_total{result="skipped",reason="disabled"}"#
        )
        .unwrap_or(0.0)
            >= 1.0
    );

    // Injector down: pods are still admitted (failurePolicy Ignore), just not injected.
    assert_eq!(injector.terminate(), Some(0));
    let pod = kube.create_pod("meshed", &restricted_pod("while-down", json!({})));
    assert!(init_names(&pod).is_empty(), "{pod}");
}
