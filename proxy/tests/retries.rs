//! Safe-by-default retries against a real app: idempotent requests are retried after the app
//! drops the connection or answers 502/503/504; POSTs are not (unless they carry an
//! Idempotency-Key); bodies over the replay cap are not; the budget stops retry storms; every
//! retry and skipped retry is counted with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::{App, Proxy, get, h1_client, metric, send};
use http::Request;
use http_body_util::Full;

/// An app and a proxy in front of it retrying after a short backoff.
async fn retrying() -> (App, Proxy) {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--retry-backoff", "5ms"], &[]).await;
    (app, proxy)
}

#[tokio::test]
async fn idempotent_request_is_retried_after_the_app_drops_the_connection() {
    let (app, proxy) = retrying().await;
    app.state.drops_left.store(1, Ordering::SeqCst);
    let (status, _, body) = get(&h1_client(), &proxy.url("/drop-once")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "recovered");
    assert_eq!(app.state.hits("/drop-once"), 2);
    assert_eq!(proxy.by_reason("retries", "connection_error").await, 1.0);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let log: serde_json::Value =
        serde_json::from_str(&proxy.stdout_lines_at_least(1).await[0]).unwrap();
    assert_eq!(log["retries"], 1);

    // 503 then success is retried too; with the app always failing, attempts are bounded.
    // The last attempt, rebuilt from a copy of a copy, carries the request's headers: repeated
    // fields in order, and the forwarding headers once.
    let req = Request::get(proxy.url("/status/503"))
        .header("x-tag", "first")
        .header("x-tag", "second")
        .header("accept", "text/plain")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, _) = send(&h1_client(), req).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(app.state.hits("/status/503"), 3, "1 attempt + 2 retries");
    let seen = app.state.last_headers.lock().unwrap().clone().unwrap();
    let tags: Vec<_> = seen.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["first", "second"]);
    assert_eq!(seen["accept"], "text/plain");
    assert_eq!(seen.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(proxy.by_reason("retries", "status_503").await, 2.0);
    // A 500 is the app's answer, not a transport failure: never retried.
    assert_eq!(proxy.get_status("/status/500").await, 500);
    assert_eq!(app.state.hits("/status/500"), 1);
}

#[tokio::test]
async fn post_is_not_retried_unless_it_has_an_idempotency_key() {
    let (app, proxy) = retrying().await;
    let c = h1_client();
    app.state.drops_left.store(1, Ordering::SeqCst);
    let post = Request::post(proxy.url("/drop-once"))
        .body(Full::new(Bytes::from_static(b"order=1")))
        .unwrap();
    let (status, _, _) = send(&c, post).await.unwrap();
    assert_eq!(status, 502);
    assert_eq!(
        app.state.hits("/drop-once"),
        1,
        "a POST must reach the app once"
    );
    assert_eq!(
        proxy.by_reason("retries_skipped", "non_idempotent").await,
        1.0
    );
    let m = proxy.metrics().await;
    assert_eq!(metric(&m, "outrigger_proxy_retries_total", &[]), 0.0);

    app.state.drops_left.store(1, Ordering::SeqCst);
    let post = Request::post(proxy.url("/drop-once"))
        .header("idempotency-key", "order-1")
        .body(Full::new(Bytes::from_static(b"order=1")))
        .unwrap();
    let (status, _, body) = send(&c, post).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"recovered"[..]));
    assert_eq!(app.state.hits("/drop-once"), 3);
}

#[tokio::test]
async fn bodies_over_the_replay_cap_are_not_retried() {
    let (app, proxy) = retrying().await;
    let c = h1_client();
    // 100 KiB > 64 KiB default cap.
    let put = Request::put(proxy.url("/consume/503"))
        .body(Full::new(Bytes::from(vec![b'a'; 100 * 1024])))
        .unwrap();
    let (status, _, _) = send(&c, put).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(app.state.hits("/consume/503"), 1);
    assert_eq!(
        proxy.by_reason("retries_skipped", "body_too_large").await,
        1.0
    );
    // A small PUT body is replayed byte for byte.
    let put = Request::put(proxy.url("/consume/503"))
        .body(Full::new(Bytes::from(vec![b'b'; 1024])))
        .unwrap();
    let (status, _, _) = send(&c, put).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(app.state.hits("/consume/503"), 4);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "outrigger_proxy_request_bytes_total", &[]),
        f64::from(101 * 1024)
    );
}

#[tokio::test]
async fn budget_exhaustion_stops_retry_storms() {
    let app = App::start().await;
    let proxy = Proxy::start(
        app.addr,
        &[
            "--retry-backoff",
            "1ms",
            "--retry-attempts",
            "1",
            "--retry-budget-ratio",
            "0",
            "--retry-budget-min-per-sec",
            "1",
        ],
        &[("OUTRIGGER_ACCESS_LOG", "false")],
    )
    .await;
    let c = h1_client();
    for _ in 0..40 {
        let (status, _, _) = get(&c, &proxy.url("/status/502")).await.unwrap();
        assert_eq!(status, 502);
    }
    // No traffic between the two scrapes.
    let retried = proxy.by_reason("retries", "status_502").await;
    let skipped = proxy.by_reason("retries_skipped", "budget_exhausted").await;
    // 1 retry/s over the 10 s window: about 10 retries, the rest refused by the budget.
    assert!((5.0..=15.0).contains(&retried), "retried {retried}");
    assert_eq!(retried + skipped, 40.0);
    assert_eq!(f64::from(app.state.hits("/status/502")), 40.0 + retried);
}

#[tokio::test]
async fn connect_failures_are_retried_then_answered_502() {
    let dead = common::free_addr();
    let proxy = Proxy::start(dead, &["--retry-backoff", "1ms"], &[]).await;
    assert_eq!(proxy.get_status("/x").await, 502);
    assert_eq!(proxy.by_reason("retries", "connect_error").await, 2.0);
}
