//! The injected container is the library chart's container: render
//! `charts/outrigger-sidecar/tests/consumer` with helm (plain settings: no TLS, no tracing) and
//! compare its `outrigger-proxy` init container field by field with what the real injector
//! binary patches into an equivalent pod. Only the drain token's value differs (random per pod
//! from the injector, derived per release by the chart); both must be there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

mod common;

use std::process::Command;

use common::{Injector, Pki, helm, injected_sidecar, repo_root, yaml_documents};
use serde_json::{Value, json};

/// Render the consumer chart with `values` and return its outrigger-proxy init container.
fn library_container(helm_bin: &std::path::Path, values: &str) -> Option<Value> {
    let work = tempfile::tempdir().unwrap();
    let lib = work.path().join("outrigger-sidecar");
    let ok = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("charts/outrigger-sidecar"))
        .arg(&lib)
        .status()
        .unwrap()
        .success();
    assert!(ok, "copying the library chart");
    let consumer = lib.join("tests/consumer");
    let consumer = consumer.to_str().unwrap();
    helm(
        helm_bin,
        &["dependency", "build", "--skip-refresh", consumer],
    );
    let values_file = work.path().join("values.yaml");
    std::fs::write(&values_file, values).unwrap();
    let rendered = helm(
        helm_bin,
        &[
            "template",
            "parity",
            consumer,
            "-f",
            values_file.to_str().unwrap(),
        ],
    );
    let docs = yaml_documents(&rendered)?;
    let sts = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("StatefulSet");
    let c = sts["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outrigger-proxy")
        .cloned()
        .expect("outrigger-proxy init container");
    Some(c)
}

/// Replace the drain token's value (random per pod from the injector, derived per release by the
/// chart) with a placeholder, after checking it is there and well-formed.
fn without_token(mut c: Value) -> Value {
    let env = c["env"].as_array_mut().expect("env");
    let entry = env
        .iter_mut()
        .find(|e| e["name"] == "OUTRIGGER_PROXY_DRAIN_TOKEN")
        .expect("OUTRIGGER_PROXY_DRAIN_TOKEN in the env");
    let token = entry["value"].as_str().expect("token value");
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    entry["value"] = json!("<token>");
    c
}

async fn injected_container(extra: &[&str], app_port: u16, grace: u32) -> Value {
    let pki = Pki::new();
    let inj = Injector::start(&pki, extra);
    let pod = json!({
        "metadata": {"name": "parity", "annotations": {"outrigger.io/inject": "enabled"}},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": app_port}]}],
        }
    });
    injected_sidecar(inj.webhook, &pki.path("ca.pem"), &pod).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_container_equals_the_library_chart_container() {
    let Some(helm) = outrigger_test_support::require_tool("helm") else {
        return;
    };
    let base = "appPort: 9000\nterminationGracePeriodSeconds: 60\noutrigger:\n  tls: {enabled: false}\n  otel: {endpoint: \"\"}\n  ports: {inbound: 4143}\n  config: null\n";
    let variants: [(String, Vec<&str>); 2] = [
        (
            format!("{base}  drainDelay: \"\"\n  drainTimeout: \"\"\n"),
            vec![],
        ),
        (
            format!("{base}  drainDelay: 3s\n  drainTimeout: 40s\n"),
            vec!["--proxy-drain-delay", "3s", "--proxy-drain-timeout", "40s"],
        ),
    ];
    for (values, extra) in variants {
        let Some(expected) = library_container(&helm, &values) else {
            return;
        };
        let image = expected["image"].as_str().unwrap().to_owned();
        let mut args = vec!["--proxy-image", image.as_str()];
        args.extend(extra);
        let got = without_token(injected_container(&args, 9000, 60).await);
        let expected = without_token(expected);
        assert_eq!(
            got,
            expected,
            "injected:\n{}\nlibrary chart:\n{}",
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }
}
