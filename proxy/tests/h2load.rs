//! Load through the proxy with nghttp2's `h2load`: h2c (prior knowledge), h2 over TLS (ALPN) and
//! HTTP/1.1, asserting every request succeeds. Counts only; timing belongs to bench/proxy.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use common::{App, Proxy, metric, require};

async fn h2load(args: &[&str]) -> String {
    let bin = require("h2load").unwrap();
    let out = tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn assert_all_succeeded(report: &str, n: u32) {
    let want =
        format!("requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored");
    assert!(report.contains(&want), "{report}");
    assert!(
        report.contains(&format!("status codes: {n} 2xx")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_h2c_h2_and_http1_all_succeed() {
    if require("h2load").is_none() {
        return;
    }
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cpath, kpath) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cpath, cert.cert.pem()).unwrap();
    std::fs::write(&kpath, cert.signing_key.serialize_pem()).unwrap();

    let plain = Proxy::start(app.addr, &[], &[("OUTRIGGER_ACCESS_LOG", "false")]).await;
    let report = h2load(&["-n", "2000", "-c", "8", "-m", "8", &plain.url("/hello")]).await;
    assert!(report.contains("Application protocol: h2c"), "{report}");
    assert_all_succeeded(&report, 2000);
    let report = h2load(&["--h1", "-n", "1000", "-c", "8", &plain.url("/hello")]).await;
    assert!(
        report.contains("Application protocol: http/1.1"),
        "{report}"
    );
    assert_all_succeeded(&report, 1000);
    let m = plain.metrics().await;
    assert_eq!(
        metric(
            &m,
            "outrigger_proxy_requests_total",
            &["status_code=\"200\""]
        ),
        3000.0
    );
    assert_eq!(metric(&m, "outrigger_proxy_requests_in_flight", &[]), 0.0);

    let tls = Proxy::start(
        app.addr,
        &[
            "--tls-cert",
            cpath.to_str().unwrap(),
            "--tls-key",
            kpath.to_str().unwrap(),
        ],
        &[("OUTRIGGER_ACCESS_LOG", "false")],
    )
    .await;
    let url = format!("https://127.0.0.1:{}/hello", tls.inbound.port());
    let report = h2load(&["-n", "1000", "-c", "4", "-m", "8", &url]).await;
    assert!(report.contains("Application protocol: h2"), "{report}");
    assert_all_succeeded(&report, 1000);
}
