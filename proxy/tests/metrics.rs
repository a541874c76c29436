//! Golden metrics: the exposition passes Debian's `promtool check metrics`, and Debian's real
//! Prometheus server scrapes the admin endpoint and answers a PromQL query with the request count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{App, Proxy, get, h1_client, metric, require, send};
use http::Request;
use http_body_util::Full;

async fn traffic(proxy: &Proxy) {
    let c = h1_client();
    for _ in 0..7 {
        assert_eq!(get(&c, &proxy.url("/hello")).await.unwrap().0, 200);
    }
    // A retried GET and a POST whose retry is skipped, so those families have samples too.
    assert_eq!(get(&c, &proxy.url("/status/503")).await.unwrap().0, 503);
    let post = Request::post(proxy.url("/status/503"))
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(send(&c, post).await.unwrap().0, 503);
}

#[tokio::test]
async fn exposition_is_promtool_clean() {
    let Some(promtool) = require("promtool") else {
        return;
    };
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--retry-backoff", "1ms"], &[]).await;
    traffic(&proxy).await;
    let text = proxy.metrics().await;
    assert_eq!(
        metric(
            &text,
            "outrigger_proxy_retries_total",
            &["reason=\"status_503\""]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "outrigger_proxy_retries_skipped_total",
            &["reason=\"non_idempotent\""]
        ),
        1.0
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{text}"
    );
}

/// Kills the child process when the test ends, pass or fail.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_and_promql_counts_requests() {
    let Some(prometheus) = require("prometheus") else {
        return;
    };
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--retry-backoff", "1ms"], &[]).await;
    traffic(&proxy).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: outrigger-proxy\n    static_configs:\n      - targets: ['{}']\n",
            proxy.admin
        ),
    )
    .unwrap();
    let web = common::free_addr();
    let _server = Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let client = h1_client();
    let query = "sum(outrigger_proxy_requests_total{job=\"outrigger-proxy\",method=\"GET\",status_code=\"200\"})";
    let url = format!(
        "http://{web}/api/v1/query?query={}",
        query
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        if let Ok((status, _, body)) = get(&client, &url).await
            && status == 200
        {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Some(sample) = v["data"]["result"][0]["value"][1].as_str() {
                break sample.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never returned a sample"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(value, "7");

    // The scrape itself is healthy (Prometheus parsed the exposition).
    let up_url = format!("http://{web}/api/v1/query?query=up");
    let (_, _, body) = get(&client, &up_url).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
}
