//! Golden metrics: the exposition passes Debian's `promtool check metrics`, and Debian's real
//! Prometheus server scrapes the admin endpoint and answers a PromQL query with the request count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{App, Proxy, get, h1_client, metric, require, send};
use http::Request;
use http_body_util::Full;
use outrigger_test_support::{Prometheus, assert_promtool_clean};

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

/// `tool`, and a proxy (with its app) after [`traffic`]; `None` (a loud skip) without the tool.
async fn proxy_after_traffic(tool: &str) -> Option<(PathBuf, App, Proxy)> {
    let tool = require(tool)?;
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--retry-backoff", "1ms"], &[]).await;
    traffic(&proxy).await;
    Some((tool, app, proxy))
}

#[tokio::test]
async fn exposition_is_promtool_clean() {
    let Some((promtool, _app, proxy)) = proxy_after_traffic("promtool").await else {
        return;
    };
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
    assert_promtool_clean(&promtool, &text);
}

#[tokio::test]
async fn prometheus_scrapes_and_promql_counts_requests() {
    let Some((prometheus, _app, proxy)) = proxy_after_traffic("prometheus").await else {
        return;
    };
    let server = Prometheus::start(&prometheus, "outrigger-proxy", proxy.admin);
    let query = "sum(outrigger_proxy_requests_total{job=\"outrigger-proxy\",method=\"GET\",status_code=\"200\"})";
    let value = server.wait_for_sample(query, Duration::from_secs(60));
    assert_eq!(value, "7");

    // The scrape itself is healthy (Prometheus parsed the exposition).
    assert_eq!(server.query("up").as_deref(), Some("1"));
}
