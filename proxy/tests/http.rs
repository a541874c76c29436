//! HTTP behaviour through the real binary: HTTP/1.1 and h2c forwarding, pooled keep-alive,
//! streaming, hop-by-hop handling, X-Forwarded-*, limits (431/413/400), WebSocket pass-through,
//! the admin endpoints and the access log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{App, Proxy, get, h1_client, h2_client, metric, raw, send};
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn forwards_http1_and_h2c_with_pooled_keepalive() {
    // One worker: the current-thread runtime, as every binary here runs unless told otherwise.
    forwards_with_workers("1").await;
}

#[tokio::test]
async fn forwards_the_same_with_two_workers() {
    forwards_with_workers("2").await;
}

async fn forwards_with_workers(workers: &str) {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--workers", workers], &[]).await;

    let h1 = h1_client();
    for _ in 0..5 {
        let (status, headers, body) = get(&h1, &proxy.url("/hello")).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "hello");
        assert!(headers.get("connection").is_none());
    }
    let h2 = h2_client();
    for _ in 0..5 {
        let (status, _, body) = get(&h2, &proxy.url("/hello")).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "hello");
    }
    assert_eq!(app.state.hits("/hello"), 10);
    // Sequential requests reuse one pooled keep-alive connection to the app.
    assert_eq!(
        app.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "outrigger_proxy_requests_total",
            &["method=\"GET\"", "status_code=\"200\""]
        ),
        10.0
    );
    assert_eq!(
        metric(
            &m,
            "outrigger_proxy_connections_total",
            &["protocol=\"h2\"", "tls=\"false\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "outrigger_proxy_connections_total",
            &["protocol=\"http1\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "outrigger_proxy_response_bytes_total", &[]),
        50.0
    );

    // One access-log line per request, JSON, with the fields.
    let lines = proxy.stdout_lines_at_least(10).await;
    assert_eq!(lines.len(), 10, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[9]).unwrap();
    for key in [
        "method",
        "path",
        "status",
        "duration_ms",
        "bytes_in",
        "bytes_out",
        "upstream_ms",
        "retries",
        "trace_id",
    ] {
        assert!(v.get(key).is_some(), "access log lacks {key}: {v}");
    }
    assert!(v["upstream_ms"].is_f64(), "upstream time measured: {v}");
    assert_eq!(v["path"], "/hello");
    assert_eq!(v["protocol"], "HTTP/2");
    assert_eq!(v["bytes_out"], 5);
}

#[tokio::test]
async fn rewrites_headers_per_rfc9110() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let h1 = h1_client();
    let req = Request::get(proxy.url("/headers"))
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&h1, req).await.unwrap();
    assert_eq!(status, 200);
    let seen = String::from_utf8(body.to_vec()).unwrap();
    assert!(!seen.contains("x-private"), "{seen}");
    assert!(!seen.contains("keep-alive: timeout"), "{seen}");
    assert!(!seen.contains("proxy-connection"), "{seen}");
    assert!(seen.contains("te: trailers"), "{seen}");
    assert!(seen.contains("x-end-to-end: kept"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 10.1.2.3, 127.0.0.1"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
    assert!(seen.contains(&format!("host: {}", proxy.inbound)), "{seen}");

    // h2 → h1: :authority becomes Host.
    let (_, _, body) = get(&h2_client(), &proxy.url("/headers")).await.unwrap();
    let seen = String::from_utf8(body.to_vec()).unwrap();
    assert!(seen.contains(&format!("host: {}", proxy.inbound)), "{seen}");
}

#[tokio::test]
async fn streams_large_bodies_both_ways() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--max-body-bytes", "8MiB"], &[]).await;
    // 3 MiB POST echoed back, over both protocols (larger than any buffer in the path).
    let payload: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    for client in [h1_client(), h2_client()] {
        let req = Request::post(proxy.url("/echo"))
            .body(Full::new(Bytes::from(payload.clone())))
            .unwrap();
        let (status, _, body) = send(&client, req).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body.len(), payload.len());
        assert!(body == payload);
    }
    let (status, _, body) = get(&h1_client(), &proxy.url("/big/5000000")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.len(), 5_000_000);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "outrigger_proxy_request_bytes_total", &[]),
        2.0 * payload.len() as f64
    );
}

#[tokio::test]
async fn enforces_limits_and_rejects_malformed_input() {
    let app = App::start().await;
    let proxy = Proxy::start(
        app.addr,
        &[
            "--max-header-bytes",
            "8KiB",
            "--max-headers",
            "20",
            "--max-body-bytes",
            "1KiB",
        ],
        &[],
    )
    .await;
    let h1 = h1_client();

    // An oversized header block or too many headers → 431 (HTTP/1 and HTTP/2).
    for client in [h1_client(), h2_client()] {
        let big = Request::get(proxy.url("/hello")).header("x-big", "a".repeat(16 * 1024));
        let many = (0..40).fold(Request::get(proxy.url("/hello")), |b, i| {
            b.header(format!("x-h{i}"), "v")
        });
        for req in [big, many] {
            let req = req.body(Full::new(Bytes::new())).unwrap();
            assert_eq!(send(&client, req).await.unwrap().0, 431);
        }
    }
    // Declared body over the cap → 413 without contacting the app.
    let req = Request::post(proxy.url("/echo"))
        .body(Full::new(Bytes::from(vec![0u8; 4096])))
        .unwrap();
    let (status, _, _) = send(&h1, req).await.unwrap();
    assert_eq!(status, 413);
    // Chunked body over the cap → 413 too (counted while streaming).
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "z".repeat(0x800)
    );
    let out = raw(proxy.inbound, chunked.as_bytes(), Duration::from_secs(10)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(app.state.hits("/echo"), 0);

    // Malformed request line and header → 400 (a TLS hello may also just be closed); the proxy
    // survives.
    for (input, may_close) in [
        (&b"GET / HTTP/9.9\r\n\r\n"[..], false),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", false),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", true),
    ] {
        let out = raw(proxy.inbound, input, Duration::from_secs(10)).await;
        assert!(
            out.starts_with("HTTP/1.1 400") || (may_close && out.is_empty()),
            "{out}"
        );
    }
    // Invalid h2 after a valid preface is a connection error, not a crash.
    let mut junk = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    junk.extend_from_slice(&[0xff; 64]);
    let _ = raw(proxy.inbound, &junk, Duration::from_secs(5)).await;

    let (status, _, body) = get(&h1, &proxy.url("/hello")).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));

    // hyper's own answers to heads it cannot parse are counted like the proxy's.
    let m = proxy.metrics().await;
    let rejected = |code: &str| {
        metric(
            &m,
            "outrigger_proxy_requests_total",
            &["method=\"other\"", &format!("status_code=\"{code}\"")],
        )
    };
    assert_eq!(
        rejected("431"),
        2.0,
        "HTTP/1 oversized head and too many headers"
    );
    assert!(rejected("400") >= 2.0, "bad version and bad header line");
    let reason = |r: &str| {
        metric(
            &m,
            "outrigger_proxy_local_responses_total",
            &[&format!("reason=\"{r}\"")],
        )
    };
    // hyper's two HTTP/1 431s plus the proxy's own for too many HTTP/2 headers; the HTTP/2
    // over-size 431 is sent by the h2 crate itself and never reaches the proxy.
    assert_eq!(reason("headers_too_large"), 3.0);
    assert_eq!(reason("malformed_request"), rejected("400"));
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (ws_addr, _task) = common::websocket_echo().await;
    // A short header timeout must not cut an upgraded connection that idles longer than it.
    let proxy = Proxy::start(ws_addr, &["--header-read-timeout", "300ms"], &[]).await;
    let stream = tokio::net::TcpStream::connect(proxy.inbound).await.unwrap();
    let (mut ws, resp) =
        tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.inbound), stream)
            .await
            .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(msg.into_text().unwrap().as_str(), format!("ping {i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn admin_ready_follows_the_app() {
    let app_addr = common::free_addr();
    let proxy = Proxy::start(app_addr, &["--connect-timeout", "200ms"], &[]).await;
    assert_eq!(proxy.admin_get("/live").await.unwrap().0, 200);
    assert_eq!(proxy.admin_get("/ready").await.unwrap().0, 503);
    // The app is down: requests get 502 (connection refused), never a hang.
    assert_eq!(proxy.get_status("/hello").await, 502);
    let app = App::start_on(app_addr).await;
    assert_eq!(proxy.admin_get("/ready").await.unwrap().0, 200);
    assert_eq!(proxy.get_status("/hello").await, 200);
    assert_eq!(app.state.hits("/hello"), 1);
    assert_eq!(proxy.admin_get("/nope").await.unwrap().0, 404);
}

#[tokio::test]
async fn access_log_can_be_switched_off() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[("OUTRIGGER_ACCESS_LOG", "false")]).await;
    assert_eq!(proxy.get_status("/hello").await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(proxy.stdout_lines().is_empty());
}

#[tokio::test]
async fn cancelled_requests_leave_nothing_in_flight() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    for client in [h2_client(), h1_client()] {
        let cancelled = tokio::time::timeout(
            Duration::from_millis(300),
            get(&client, &proxy.url("/slow/2000")),
        )
        .await;
        assert!(cancelled.is_err(), "the request should still be running");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = proxy.metrics().await;
        if metric(&m, "outrigger_proxy_requests_in_flight", &[]) == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "in-flight gauge leaked:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
