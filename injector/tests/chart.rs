//! charts/outrigger's injector objects against the real binary: every env var the Deployment
//! sets is a setting the binary documents (clap would silently ignore a misspelt one), and the
//! binary started with exactly the chart's environment serves and injects what the values say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Pki, free_port, helm_render, http_get, injected_sidecar};
use serde_json::{Value, json};

fn injector_container(docs: &[Value]) -> Value {
    let dep = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "outrigger-injector")
        .expect("injector Deployment");
    dep["spec"]["template"]["spec"]["containers"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_environment_drives_the_binary() {
    let Some(docs) = helm_render(&[
        "--set",
        "injector.enabled=true",
        "--set",
        "injector.proxy.image.tag=7.7.7",
        "--set",
        "injector.proxy.drainDelay=4s",
        "--set",
        "injector.proxy.resources.limits.cpu=250m",
        "--set",
        "injector.proxy.resources.requests.memory=48Mi",
    ]) else {
        return;
    };
    let container = injector_container(&docs);
    let help = Command::new(common::bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for (name, _) in &env {
        assert!(
            help.contains(&format!("[env: {name}=")),
            "chart sets {name}, which outrigger-injector does not read"
        );
    }
    // Probes and ports the chart points at must be the ones the binary serves.
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/live");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");

    // Run the binary with the chart's environment; only addresses and file paths are local.
    let pki = Pki::new();
    let webhook = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(common::bin());
    cmd.env_clear()
        .stderr(Stdio::inherit())
        .stdout(Stdio::null());
    for (name, value) in &env {
        let value = match name.as_str() {
            "OUTRIGGER_INJECTOR_LISTEN" => webhook.clone(),
            "OUTRIGGER_INJECTOR_ADMIN" => admin.clone(),
            "OUTRIGGER_INJECTOR_TLS_CERT" => pki.path("tls.crt").display().to_string(),
            "OUTRIGGER_INJECTOR_TLS_KEY" => pki.path("tls.key").display().to_string(),
            _ => value.clone(),
        };
        cmd.env(name, value);
    }
    let mut child = cmd
        .env("OUTRIGGER_INJECTOR_SHUTDOWN_DELAY", "0s")
        .spawn()
        .unwrap();
    let admin_addr = admin.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(admin_addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("injector exited with the chart's environment: {status}");
        }
        assert!(Instant::now() < deadline, "admin port never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_get(admin_addr, "/ready").0, 200);
    let pod = json!({
        "metadata": {"name": "web", "annotations": {"outrigger.io/inject": "enabled"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}
    });
    let sidecar = &injected_sidecar(webhook.parse().unwrap(), &pki.path("ca.pem"), &pod).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        sidecar["image"],
        "ghcr.io/outrigger-mesh/outrigger-proxy:7.7.7"
    );
    assert_eq!(
        sidecar["resources"],
        json!({"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}})
    );
    assert!(
        sidecar["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "OUTRIGGER_DRAIN_DELAY", "value": "4s"}))
    );
    // drainTimeout is empty in the values: not set, the proxy derives it.
    assert!(
        !sidecar["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "OUTRIGGER_DRAIN_TIMEOUT"),
        "{sidecar}"
    );
}

#[test]
fn chart_objects_are_consistent() {
    let Some(docs) = helm_render(&["--set", "injector.enabled=true"]) else {
        return;
    };
    let kind = |k: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == k).collect() };
    let container = injector_container(&docs);
    let dep = kind("Deployment")[0];
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(
        pod["nodeSelector"]["doks.digitalocean.com/node-pool"],
        "infra"
    );
    assert!(pod["tolerations"].as_array().unwrap().contains(&json!({
        "key": "outrigger.io/dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"
    })));
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // No RBAC for the injector.
    for k in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] {
        assert!(
            kind(k)
                .iter()
                .all(|d| !d["metadata"]["name"].as_str().unwrap().contains("injector")),
            "{k} for the injector"
        );
    }
    // Service -> container ports by name; the webhook's Service reference matches.
    let svc = kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "outrigger-injector")
        .unwrap();
    let port_names: Vec<&str> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in svc["spec"]["ports"].as_array().unwrap() {
        assert!(
            port_names.contains(&p["targetPort"].as_str().unwrap()),
            "{p}"
        );
    }
    let selector = &svc["spec"]["selector"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(
            &pod_labels(dep)[k],
            v,
            "Service selector {k} misses the pods"
        );
    }
    let mwc = kind("MutatingWebhookConfiguration")[0];
    assert_eq!(
        mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "outrigger-system/outrigger-injector-ca"
    );
    let cert_names: Vec<&str> = kind("Certificate")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(cert_names.contains(&"outrigger-injector-ca"));
    let serving = kind("Certificate")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "outrigger-injector")
        .unwrap();
    assert!(
        serving["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&json!("outrigger-injector.outrigger-system.svc"))
    );
    let secret = serving["spec"]["secretName"].as_str().unwrap();
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == secret)
    );
    for w in mwc["webhooks"].as_array().unwrap() {
        assert_eq!(w["clientConfig"]["service"]["name"], "outrigger-injector");
        assert_eq!(w["clientConfig"]["service"]["port"], 443);
        assert_eq!(w["failurePolicy"], "Ignore");
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["reinvocationPolicy"], "IfNeeded");
        assert_eq!(w["timeoutSeconds"], 5);
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
        let excluded = w["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == "kubernetes.io/metadata.name")
            .unwrap();
        assert_eq!(excluded["operator"], "NotIn");
        assert_eq!(
            excluded["values"],
            json!(["outrigger-system", "kube-system"])
        );
    }
    let pdb = kind("PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    assert_eq!(pdb[0]["spec"]["minAvailable"], 1);
    let sm = kind("ServiceMonitor")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "outrigger-injector")
        .unwrap();
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");

    // Off: nothing of the injector is rendered.
    let off = helm_render(&["--set", "injector.enabled=false"]).unwrap();
    assert!(
        off.iter().all(|d| !d["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .contains("injector")),
        "injector objects rendered while disabled"
    );
}

fn pod_labels(dep: &Value) -> &serde_json::Map<String, Value> {
    dep["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
}
