//! Inbound TLS with certificates generated here (rcgen), checked with real `curl` and
//! `openssl s_client`: versions, ALPN, mTLS, handshake-error counting, and certificate rotation
//! during traffic without dropping a connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{App, Pki, Proxy, metric, require};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn tls_proxy(pki: &Pki, app: &App, extra: &[&str]) -> Proxy {
    pki.write_leaf("server", "gen-1");
    let mut args = vec![
        "--tls-cert".to_owned(),
        pki.path("server.pem").display().to_string(),
        "--tls-key".to_owned(),
        pki.path("server.key").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(app.addr, &args, &[]).await
}

/// Run curl without blocking the runtime (the test app is served by the same runtime).
async fn curl(args: &[&str]) -> (bool, String) {
    let curl = common::tool("curl").unwrap();
    let out = tokio::process::Command::new(curl)
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn s_client(port: u16, extra: &[&str]) -> String {
    let openssl = common::tool("openssl").unwrap();
    let out = tokio::process::Command::new(openssl)
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn curl_and_openssl_see_modern_tls_with_alpn() {
    let (Some(_), Some(_)) = (require("curl"), require("openssl")) else {
        return;
    };
    let pki = Pki::new();
    let app = App::start().await;
    let proxy = tls_proxy(&pki, &app, &[]).await;
    let port = proxy.inbound.port();
    let url = format!("https://localhost:{port}/hello");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = pki.path("ca.pem");
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (ok, out) = curl(&[
            flag,
            "--cacert",
            p(&ca),
            "--resolve",
            &resolve,
            "-w",
            " %{http_code} %{http_version}",
            &url,
        ])
        .await;
        assert!(ok, "{out}");
        assert_eq!(out, format!("hello 200 {version}"));
    }
    // X-Forwarded-Proto says https.
    let (ok, out) = curl(&[
        "--cacert",
        p(&ca),
        "--resolve",
        &resolve,
        &format!("https://localhost:{port}/headers"),
    ])
    .await;
    assert!(ok && out.contains("x-forwarded-proto: https"), "{out}");

    let out = s_client(port, &["-tls1_3", "-alpn", "h2"]).await;
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    let out = s_client(port, &["-tls1_2", "-alpn", "http/1.1"]).await;
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("Protocol  : TLSv1.2"), "{out}");
    // TLS 1.1 and weak suites are refused.
    // TLS 1.1 and non-AEAD suites are refused: no handshake completes.
    let out = s_client(port, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]).await;
    assert!(out.contains("no peer certificate available"), "{out}");
    let out = s_client(port, &["-tls1_2", "-cipher", "AES128-SHA"]).await;
    assert!(out.contains("no peer certificate available"), "{out}");

    // Plaintext on the TLS port: dropped and counted, never fatal.
    let junk = common::raw(
        proxy.inbound,
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!junk.contains("200"), "{junk}");
    let m = proxy.metrics().await;
    assert!(
        metric(&m, "outrigger_proxy_tls_handshake_errors_total", &[]) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "outrigger_proxy_tls_handshake_errors_total",
            &["reason=\"malformed\""]
        ) >= 1.0,
        "{m}"
    );
    // The server itself refused TLS 1.1 and the non-AEAD suite.
    assert!(
        metric(
            &m,
            "outrigger_proxy_tls_handshake_errors_total",
            &["reason=\"incompatible\""]
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "outrigger_proxy_connections_total",
            &["protocol=\"h2\"", "tls=\"true\""]
        ) >= 1.0
    );
    let (ok, out) = curl(&["--cacert", p(&ca), "--resolve", &resolve, &url]).await;
    assert!(ok && out == "hello", "{out}");
}

/// curl to `url` (trusting `ca`) presenting the `client` certificate `issuer` signed.
async fn curl_with_cert(issuer: &Pki, ca: &Path, resolve: &str, url: &str) -> (bool, String) {
    let (cert, key) = (issuer.path("client.pem"), issuer.path("client.key"));
    let (cert, key) = (p(&cert), p(&key));
    curl(&[
        "--cacert",
        p(ca),
        "--cert",
        cert,
        "--key",
        key,
        "--resolve",
        resolve,
        url,
    ])
    .await
}

#[tokio::test]
async fn client_ca_requires_client_certificates() {
    let Some(_) = require("curl") else {
        return;
    };
    let pki = Pki::new();
    pki.write_leaf("client", "client-1");
    let app = App::start().await;
    let ca = pki.path("ca.pem");
    let proxy = tls_proxy(&pki, &app, &["--client-ca", p(&ca)]).await;
    let port = proxy.inbound.port();
    let url = format!("https://localhost:{port}/hello");
    let resolve = format!("localhost:{port}:127.0.0.1");

    let (ok, out) = curl(&["--cacert", p(&ca), "--resolve", &resolve, &url]).await;
    assert!(!ok, "request without a client cert must fail: {out}");
    let (ok, out) = curl_with_cert(&pki, &ca, &resolve, &url).await;
    assert!(ok && out == "hello", "{out}");
    // A certificate from another CA is rejected too.
    let other = Pki::new();
    other.write_leaf("client", "intruder");
    let (ok, _) = curl_with_cert(&other, &ca, &resolve, &url).await;
    assert!(!ok);
    let m = proxy.metrics().await;
    for reason in ["no_client_cert", "bad_certificate"] {
        let labels = format!("reason=\"{reason}\"");
        let errors = metric(&m, "outrigger_proxy_tls_handshake_errors_total", &[&labels]);
        assert!(errors >= 1.0, "{reason}: {m}");
    }
}

fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Full handshakes only, so every new connection shows the certificate in service.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A TLS + HTTP/1.1 keep-alive connection; returns the sender and the server's leaf cert.
async fn connect(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> (Sender, CertificateDer<'static>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (sender, leaf)
}

async fn fetch(sender: &mut Sender) -> Result<u16, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::get("/hello")
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let (status, _, _) =
        common::collected(Duration::from_secs(10), sender.send_request(req)).await?;
    Ok(status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_during_traffic_drops_nothing() {
    let pki = Pki::new();
    let app = App::start().await;
    let proxy = tls_proxy(&pki, &app, &[]).await;
    let cfg = client_config(&pki);
    let (mut long_lived, first_leaf) = connect(proxy.inbound, cfg.clone()).await;

    // Continuous traffic on a long-lived connection and on fresh connections.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU32::new(0));
    let addr = proxy.inbound;
    let (s, o, c) = (stop.clone(), ok.clone(), cfg.clone());
    let churn = tokio::spawn(async move {
        let mut failures = Vec::new();
        while !s.load(Ordering::Acquire) {
            let (mut fresh, _) = connect(addr, c.clone()).await;
            match fetch(&mut fresh).await {
                Ok(200) => {
                    o.fetch_add(1, Ordering::Relaxed);
                }
                other => failures.push(format!("{other:?}")),
            }
        }
        failures
    });

    for _ in 0..20 {
        assert_eq!(fetch(&mut long_lived).await, Ok(200));
    }
    pki.write_leaf("server", "gen-2");
    // New handshakes pick up the new certificate within a few reload intervals.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(
            fetch(&mut long_lived).await,
            Ok(200),
            "long-lived connection broke"
        );
        let (_, leaf) = connect(proxy.inbound, cfg.clone()).await;
        if leaf != first_leaf {
            break;
        }
        assert!(Instant::now() < deadline, "certificate was not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        assert_eq!(fetch(&mut long_lived).await, Ok(200));
    }
    stop.store(true, Ordering::Release);
    let failures = churn.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok.load(Ordering::Relaxed) > 5);

    // A broken pair is refused and the current certificate stays in service.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut again, _) = connect(proxy.inbound, cfg.clone()).await;
    assert_eq!(fetch(&mut again).await, Ok(200));
    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            "outrigger_proxy_tls_cert_reloads_total",
            &["result=\"success\""]
        ) >= 1.0
    );
    assert!(
        metric(
            &m,
            "outrigger_proxy_tls_cert_reloads_total",
            &["result=\"error\""]
        ) >= 1.0
    );
}
