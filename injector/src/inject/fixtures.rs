//! Pods and patch readers shared by the unit tests of the injection modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::{Decision, Mode, decide};
use crate::config::ProxySpec;

pub(crate) fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

pub(crate) fn apply(p: &Pod, d: &Decision) -> Value {
    let Decision::Inject(patch, _) = d else {
        panic!("expected injection, got {d:?}")
    };
    let mut doc = serde_json::to_value(p).unwrap();
    json_patch::patch(&mut doc, patch).unwrap();
    doc
}

pub(crate) fn web(annotations: Option<Value>) -> Pod {
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

pub(crate) fn env(doc: &Value, name: &str) -> Option<String> {
    doc["spec"]["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap().to_owned())
}

/// `p` after the pod opt-in webhook's patch (with the default proxy spec) is applied.
pub(crate) fn injected(p: &Pod) -> Value {
    apply(
        p,
        &decide(p, Mode::PodOptIn, &ProxySpec::default()).unwrap(),
    )
}

/// The warnings of an injection decision.
pub(crate) fn warnings(d: &Decision) -> &[String] {
    let Decision::Inject(_, warnings) = d else {
        panic!("expected injection, got {d:?}")
    };
    warnings
}
