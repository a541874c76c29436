//! Shared helpers: a throw-away PKI (rcgen), the real injector binary as a child process, and
//! small HTTPS/HTTP clients over real sockets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

#[allow(unused_imports)] // each test binary uses a different subset
pub use outrigger_test_support::{
    find_tool as tool, free_port, repo_root, sample, scrape, wait_until,
};

/// The shared test PKI, with the webhook's serving pair in `tls.crt`/`tls.key`.
pub struct Pki(outrigger_test_support::Pki);

impl std::ops::Deref for Pki {
    type Target = outrigger_test_support::Pki;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Pki {
    pub fn new() -> Self {
        let pki = Self(outrigger_test_support::Pki::new());
        pki.write_leaf("outrigger-injector");
        pki
    }

    /// (Re)issue tls.crt/tls.key with common name `cn`, atomically like a Secret update.
    pub fn write_leaf(&self, cn: &str) {
        self.0.write_pair("tls.crt", "tls.key", cn);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_outrigger-injector")
}

/// The injector binary, killed on drop.
pub struct Injector {
    pub child: Child,
    pub webhook: SocketAddr,
    pub admin: SocketAddr,
}

impl Injector {
    pub fn start(pki: &Pki, extra: &[&str]) -> Self {
        let webhook: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(bin())
            .args([
                "--listen",
                &webhook.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .arg("--tls-cert")
            .arg(pki.path("tls.crt"))
            .arg("--tls-key")
            .arg(pki.path("tls.key"))
            .args(["--tls-reload-interval", "200ms"])
            .args(if extra.contains(&"--shutdown-delay") {
                &[][..]
            } else {
                &["--shutdown-delay", "0s"][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let inj = Self {
            child,
            webhook,
            admin,
        };
        wait_until("the injector's admin port", Duration::from_secs(20), || {
            std::net::TcpStream::connect(admin).is_ok()
        });
        inj
    }

    /// SIGTERM and wait (hang guard 20 s); returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let mut status = None;
        wait_until(
            "the injector to exit after SIGTERM",
            Duration::from_secs(20),
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.and_then(|s| s.code())
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client_config(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// One HTTPS request over a fresh connection; returns (status, body). Verifies the server
/// certificate against `ca_pem` for the name 127.0.0.1.
pub async fn https(
    addr: SocketAddr,
    ca_pem: &Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem));
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("hang guard")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

/// Plain HTTP GET (admin port); returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    outrigger_test_support::metrics::http_get(addr, path)
        .unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// An AdmissionReview for a pod CREATE.
pub fn review(uid: &str, pod: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": pod,
            "dryRun": false,
        }
    }))
    .unwrap()
}

/// POSTs `pod` to `/mutate` over TLS (trusting `ca_pem`), applies the returned JSON patch, and
/// returns the injected sidecar container (the first init container).
pub async fn injected_sidecar(
    webhook: SocketAddr,
    ca_pem: &Path,
    pod: &serde_json::Value,
) -> serde_json::Value {
    use base64::Engine as _;
    let (status, body) = https(webhook, ca_pem, "POST", "/mutate", review("sidecar", pod)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let resp: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(resp["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc["spec"]["initContainers"][0].clone()
}

/// Render `charts/outrigger` templates with helm and convert them to JSON objects (python3 +
/// PyYAML). None (with a loud SKIPPED line) when either tool is missing.
pub fn helm_render(args: &[&str]) -> Option<Vec<serde_json::Value>> {
    let helm_bin = outrigger_test_support::require_tool("helm")?;
    let chart = repo_root().join("charts/outrigger");
    let mut all = vec![
        "template",
        "outrigger",
        chart.to_str().unwrap(),
        "--kube-version",
        "1.34.0",
        "--namespace",
        "outrigger-system",
    ];
    all.extend(args);
    yaml_documents(&helm(&helm_bin, &all))
}

/// Runs `helm` with `args` and returns what it printed; panics with helm's stderr when it fails.
pub fn helm(helm: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(helm).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The YAML documents in `yaml` (helm's output) as JSON values, converted by python3 + PyYAML.
/// None (with a loud SKIPPED line) when either is missing.
pub fn yaml_documents(yaml: &[u8]) -> Option<Vec<serde_json::Value>> {
    let missing = || {
        outrigger_test_support::skip("python3 with PyYAML not installed");
        None
    };
    let Ok(mut conv) = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return missing();
    };
    {
        use std::io::Write as _;
        conv.stdin.take().unwrap().write_all(yaml).unwrap();
    }
    let conv = conv.wait_with_output().unwrap();
    if !conv.status.success() {
        return missing();
    }
    Some(serde_json::from_slice(&conv.stdout).unwrap())
}
