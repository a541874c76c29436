//! The kube test env (outrigger_test_support::KubeTestEnv) and small API helpers of the controller
//! test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use outrigger_test_support::KubeTestEnv;
use serde_json::Value;

/// The kube test env (outrigger_test_support::KubeTestEnv) with kubectl and a kube client.
pub struct KubeEnv(KubeTestEnv);

impl KubeEnv {
    /// `None` after a skip (a failure in CI) when a tool is missing.
    pub fn start() -> Option<Self> {
        KubeTestEnv::start().map(Self)
    }

    pub fn kubectl(&self, kubectl: &Path, args: &[&str]) {
        let status = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.0.kubeconfig())
            .args(args)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (scripts/tools.sh cluster installs it)",
                    kubectl.display()
                )
            });
        assert!(status.success(), "kubectl {args:?} failed");
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.0.kubeconfig()).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        Client::try_from(config).unwrap()
    }
}

/// The standard-channel CRDs, from the module cache (`go env GOMODCACHE`); `None` after a
/// skip (a failure in CI) when they are not there.
pub fn crd_dir(go: &Path) -> Option<PathBuf> {
    let out = Command::new(go)
        .args(["env", "GOMODCACHE"])
        .output()
        .unwrap();
    let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = cache.join("sigs.k8s.io/gateway-api@v1.6.3/config/crd/standard");
    if !dir.is_dir() {
        outrigger_test_support::skip(&format!(
            "no Gateway API CRDs at {} (scripts/tools.sh schemas downloads the module)",
            dir.display()
        ));
        return None;
    }
    Some(dir)
}

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn api(client: &Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    ns.map_or_else(
        || Api::all_with(client.clone(), ar),
        |ns| Api::namespaced_with(client.clone(), ns, ar),
    )
}

/// Create any object from JSON.
pub async fn create(client: &Client, ar: &ApiResource, ns: Option<&str>, obj: Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api(client, ar, ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", ar.kind));
}

pub async fn get(client: &Client, ar: &ApiResource, ns: Option<&str>, name: &str) -> Value {
    serde_json::to_value(api(client, ar, ns).get(name).await.unwrap()).unwrap()
}

/// Poll `check` until it returns `Some`, or fail with the last state after 30 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Checks each wanted `(type, status, reason)` condition, and its observedGeneration.
pub fn conds(
    conditions: &Value,
    generation: &Value,
    want: &[(&str, &str, &str)],
) -> Result<(), String> {
    for (type_, status, reason) in want {
        let c = conditions
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == *type_))
            .ok_or_else(|| format!("no {type_} condition in {conditions}"))?;
        if c["status"] != *status
            || c["reason"] != *reason
            || c["observedGeneration"] != *generation
        {
            return Err(format!(
                "want {type_} {status} {reason} at generation {generation}: {c}"
            ));
        }
    }
    Ok(())
}
