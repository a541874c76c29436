//! A real etcd + kube-apiserver for tests (`scripts/kube-test-env.sh`: Debian's etcd and the
//! pinned kube-apiserver, loopback only), in a private state dir and stopped on drop, also when
//! an assert fails. The agent's, the injector's and the gateway controller's API tests share it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::tools::{repo_root, skip};

/// A running kube test env.
pub struct KubeTestEnv {
    state: PathBuf,
    url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl KubeTestEnv {
    /// Start one. `None` after a [`skip`] when the script says a tool is missing (its exit 2),
    /// which fails the test under `CI=true`.
    pub fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("kube");
        let out = Command::new(repo_root().join("scripts/kube-test-env.sh"))
            .arg("start")
            .env("OUTRIGGER_KUBE_TEST_DIR", &state)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(2) {
            skip(stderr.trim());
            return None;
        }
        assert!(out.status.success(), "kube-test-env.sh start: {stderr}");
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            kubeconfig.is_file(),
            "no kubeconfig at {}",
            kubeconfig.display()
        );
        let url = std::fs::read_to_string(state.join("api-url"))
            .unwrap()
            .trim()
            .to_owned();
        Some(Self {
            state,
            url,
            kubeconfig,
            _dir: dir,
        })
    }

    /// The API server's base URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An admin kubeconfig for it.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// curl with the admin client certificate, the test CA and a JSON content type.
    pub fn curl(&self, method: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "-X", method])
            .arg("--cacert")
            .arg(self.state.join("ca.crt"))
            .arg("--cert")
            .arg(self.state.join("admin.crt"))
            .arg("--key")
            .arg(self.state.join("admin.key"))
            .args(["-H", "Content-Type: application/json"]);
        cmd
    }

    /// One API call as admin; returns the status (0 when curl got no answer) and the JSON body
    /// (`Null` when there is none).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut cmd = self.curl(method);
        cmd.args(["-w", "\n%{http_code}"]);
        if let Some(b) = body {
            cmd.args(["--data-binary", b]);
        }
        let out = cmd.arg(format!("{}{path}", self.url)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(json).unwrap_or(Value::Null),
        )
    }
}

impl Drop for KubeTestEnv {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/kube-test-env.sh"))
            .arg("stop")
            .env("OUTRIGGER_KUBE_TEST_DIR", &self.state)
            .output();
    }
}
