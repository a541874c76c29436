//! Timeouts with short configured values: request-header read (slowloris → 408), whole request
//! (504), idle keep-alive close. Durations are hang guards, never performance assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::time::{Duration, Instant};

use common::{App, Proxy, raw};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn slowloris_gets_408() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--header-read-timeout", "800ms"], &[]).await;

    // Trickle header bytes forever: the head never completes within the timeout.
    let mut s = tokio::net::TcpStream::connect(proxy.inbound).await.unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0..14 {
            if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    let mut s2 = tokio::net::TcpStream::connect(proxy.inbound).await.unwrap();
    trickle.await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    assert_eq!(app.state.hits("/hello"), 0);

    // A connection that never sends anything is answered 408 and closed as well.
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s2.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"));

    // On a keep-alive connection the next head gets its own deadline, also when it starts with
    // the empty lines a request may be preceded by (they are no head's end).
    let mut kept = Vec::new();
    for next_head in [
        &b"GET /hello HTTP/1.1\r\n"[..],
        b"\r\n\r\nGET /hello HTTP/1.1\r\n",
    ] {
        kept.push((common::kept_alive(proxy.inbound).await, next_head));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // idle, not slow: no 408 yet
    for (s, next_head) in &mut kept {
        s.write_all(next_head).await.unwrap();
    }
    for (s, _) in &mut kept {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(
            String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
            "{out:?}"
        );
    }

    let timeouts = proxy.by_reason("local_responses", "header_timeout").await;
    assert!(timeouts >= 4.0, "{}", proxy.metrics().await);
    // Normal clients are unaffected.
    assert_eq!(proxy.get_status("/hello").await, 200);
}

#[tokio::test]
async fn slow_app_gets_504_at_the_request_timeout() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--request-timeout", "500ms"], &[]).await;
    let t0 = Instant::now();
    assert_eq!(proxy.get_status("/slow/5000").await, 504);
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(proxy.get_status("/slow/10").await, 200);
}

#[tokio::test]
async fn each_request_on_a_keepalive_connection_gets_its_whole_timeout() {
    // HTTP/1 requests of one connection share a timer; a request must not inherit the deadline
    // of the one before it.
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--request-timeout", "600ms"], &[]).await;
    let mut s = common::kept_alive(proxy.inbound).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sent = Instant::now();
    s.write_all(b"GET /slow/5000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(4), s.read(&mut buf))
        .await
        .expect("no answer within the hang guard")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    // Not at the first request's deadline (~200 ms after sending), at its own (600 ms).
    assert!(
        sent.elapsed() >= Duration::from_millis(550),
        "{:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--idle-timeout", "500ms"], &[]).await;
    let mut s = common::kept_alive(proxy.inbound).await;
    let mut buf = [0u8; 1024];
    // The server closes the idle connection cleanly (EOF, no bytes).
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("idle connection was not closed")
        .unwrap();
    assert_eq!(n, 0);
    // Fresh connections still work, and a connection reset by a client mid-head is harmless.
    let _ = raw(proxy.inbound, b"GET /hel", Duration::from_millis(10)).await;
    assert_eq!(proxy.get_status("/hello").await, 200);
}

#[tokio::test]
async fn app_connect_timeout_gets_504() {
    // A listener whose accept queue is full and never drained: further SYNs are dropped, so
    // connecting hangs until the proxy's connect timeout.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let proxy = Proxy::start(
        addr,
        &["--connect-timeout", "300ms", "--retry-attempts", "0"],
        &[],
    )
    .await;
    let t0 = Instant::now();
    assert_eq!(proxy.get_status("/hello").await, 504);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let timeouts = proxy.by_reason("local_responses", "connect_timeout").await;
    assert_eq!(timeouts, 1.0);
    drop(fillers);
}
