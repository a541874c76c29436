//! The app connection pool against real TCP servers: reuse, connections the app closed while
//! idle, refused connects, idle expiry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use outrigger_proxy::body::ReqBody;
use outrigger_proxy::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A minimal HTTP/1.1 app: answers each request head with "ok"; with `close_after_each` it
/// closes the socket after every response without saying so (like an app whose keep-alive
/// timeout expired). Returns its address and a count of accepted connections.
async fn app(close_after_each: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(resp).await.is_err() {
                            return;
                        }
                        if close_after_each {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn get() -> Request<ReqBody> {
    Request::builder()
        .uri("/")
        .header("host", "app")
        .body(ReqBody::empty())
        .unwrap()
}

/// Idle timeout long enough that no test sees a sweep, unless it asks for one.
const IDLE: Duration = Duration::from_secs(60);

/// A pool (connect timeout 1 s, up to 8 idle connections) to `addr`.
fn pool(addr: std::net::SocketAddr, idle: Duration) -> Arc<Upstream> {
    Upstream::new(addr, Duration::from_secs(1), idle, 8)
}

/// A pool to a fresh [`app`], and the app's count of accepted connections.
async fn pooled(close_after_each: bool, idle: Duration) -> (Arc<Upstream>, Arc<AtomicUsize>) {
    let (addr, accepted) = app(close_after_each).await;
    (pool(addr, idle), accepted)
}

async fn send_ok(pool: &Arc<Upstream>) {
    let resp = pool.send(get()).await.expect("request");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

#[tokio::test]
async fn connections_are_reused_after_the_body_is_read() {
    let (pool, accepted) = pooled(false, IDLE).await;
    for _ in 0..5 {
        send_ok(&pool).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for sequential requests"
    );
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_connection_the_app_closed_while_idle_is_not_used_again() {
    let (pool, accepted) = pooled(true, IDLE).await;
    for _ in 0..3 {
        send_ok(&pool).await;
        // Let the pooled connection see the app's FIN.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let pool = pool(port, IDLE);
    let err = pool.send(get()).await.expect_err("nothing listens");
    assert!(err.is_connect(), "{err}");
    assert!(!err.is_timeout());
}

#[tokio::test]
async fn idle_connections_expire() {
    let (pool, accepted) = pooled(false, Duration::from_millis(200)).await;
    send_ok(&pool).await;
    assert_eq!(pool.idle_count(), 1);
    // Sweeps run every half idle timeout: gone after at most one idle timeout (plus slack).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pool.idle_count(), 0);
    send_ok(&pool).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unread_body_does_not_return_its_connection() {
    // The body comes after the head, so the response is not read whole with it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                        .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = s.write_all(b"ok").await;
                }
            });
        }
    });
    let pool = pool(addr, IDLE);
    let resp = pool.send(get()).await.unwrap();
    drop(resp);
    assert_eq!(pool.idle_count(), 0);
    send_ok(&pool).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_response_read_whole_with_its_head_returns_the_connection_at_once() {
    let (pool, accepted) = pooled(false, IDLE).await;
    let resp = pool.send(get()).await.unwrap();
    // The body has not been polled, yet every byte of it was read with the head.
    assert_eq!(pool.idle_count(), 1);
    drop(resp);
    send_ok(&pool).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
