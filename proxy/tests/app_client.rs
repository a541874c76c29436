//! The app-side HTTP/1.1 client against scripted apps on real sockets, byte for byte: response
//! framing (chunked with trailers, close-delimited, bodyless statuses, informational heads),
//! malformed and oversized responses, pooled connections the app closed or wrote to while idle,
//! early answers to streamed bodies, an app that dies mid-body, and 101 tunnels. Pool-level
//! cases use `Upstream` in-process; the rest go through the proxy binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Proxy, h1_client, raw};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use outrigger_proxy::body::ReqBody;
use outrigger_proxy::upstream::{AppError, Upstream, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests as the app received them, per connection, in order.
type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A scripted app: each connection goes to `serve` with its index (0-based). Returns the
/// address and the count of accepted connections.
async fn app<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, n));
        }
    });
    (addr, accepted)
}

/// Read one request head (through its empty line); `None` at EOF. Bytes after it stay unread
/// (the tests' requests have no body unless the test reads it).
async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// An app that answers every request head on a connection with `response`, recording heads.
async fn answering(response: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let (addr, accepted) = app(move |mut s, _| {
        let record = record.clone();
        async move {
            while let Some(head) = read_head(&mut s).await {
                record.lock().unwrap().push(head);
                if s.write_all(response).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, accepted, seen)
}

fn pool(addr: SocketAddr) -> Arc<Upstream> {
    Upstream::new(addr, Duration::from_secs(1), Duration::from_secs(60), 8)
}

fn request(method: Method, body: ReqBody) -> Request<ReqBody> {
    Request::builder()
        .method(method)
        .uri("/p?q=1")
        .header("host", "app")
        .body(body)
        .unwrap()
}

fn get() -> Request<ReqBody> {
    request(Method::GET, ReqBody::empty())
}

/// Collect a response body within 5 s.
async fn collect(
    resp: http::Response<outrigger_proxy::upstream::AppBody>,
) -> Result<http_body_util::Collected<Bytes>, AppError> {
    tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("the body did not end")
}

#[tokio::test]
async fn request_heads_go_out_byte_exact() {
    let (addr, _, seen) = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let pool = pool(addr);
    collect(pool.send(get()).await.unwrap()).await.unwrap();
    assert_eq!(
        seen.lock().unwrap()[0],
        b"GET /p?q=1 HTTP/1.1\r\nhost: app\r\n\r\n"
    );
}

#[tokio::test]
async fn a_pooled_connection_serves_sequential_requests() {
    let (addr, accepted, seen) = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let pool = pool(addr);
    for _ in 0..10 {
        let body = collect(pool.send(get()).await.unwrap()).await.unwrap();
        assert_eq!(body.to_bytes(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(seen.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn chunked_responses_with_trailers_are_decoded_across_reads() {
    // Split inside a chunk line, inside its extension, inside data and inside the trailers.
    const PIECES: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n",
        b"5;ext",
        b"=1\r\nhel",
        b"lo\r\n6\r\n world\r",
        b"\n0\r\nx-s",
        b"um: 42\r\n",
        b"\r\n",
    ];
    let (addr, accepted) = app(|mut s, _| async move {
        while read_head(&mut s).await.is_some() {
            for piece in PIECES {
                s.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .await;
    let pool = pool(addr);
    for _ in 0..2 {
        let resp = pool.send(get()).await.unwrap();
        assert!(!resp.headers().contains_key("content-length"));
        let collected = collect(resp).await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "42");
        assert_eq!(collected.to_bytes(), "hello world");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "pooled after the trailers"
    );
}

#[tokio::test]
async fn a_bad_chunk_size_fails_the_body_or_the_response() {
    // Read after the head: the body fails.
    let (addr, _) = app(|mut s, _| async move {
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"zz\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let after = pool(addr);
    let err = collect(after.send(get()).await.unwrap()).await.unwrap_err();
    assert!(matches!(err, AppError::Chunked), "{err:?}");
    assert_eq!(after.idle_count(), 0);
    // Read with the head: the response fails (the client gets a 502, not a cut body).
    let (addr, _, _) =
        answering(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n").await;
    let err = pool(addr).send(get()).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Request(AppError::Chunked)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_close_delimited_response_is_read_to_the_close_and_not_pooled() {
    let (addr, accepted) = app(|mut s, _| async move {
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\nabc").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"def").await.unwrap();
    })
    .await;
    let pool = pool(addr);
    for _ in 0..2 {
        let body = collect(pool.send(get()).await.unwrap()).await.unwrap();
        assert_eq!(body.to_bytes(), "abcdef");
        assert_eq!(pool.idle_count(), 0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn head_204_and_304_have_no_body_whatever_their_content_length() {
    let cases: [(Method, &'static [u8]); 3] = [
        (
            Method::HEAD,
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n",
        ),
        (
            Method::GET,
            b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
        ),
        (
            Method::GET,
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
        ),
    ];
    for (method, response) in cases {
        let (addr, accepted, seen) = answering(response).await;
        let pool = pool(addr);
        let resp = pool
            .send(request(method.clone(), ReqBody::empty()))
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["content-length"],
            if method == Method::HEAD { "100" } else { "5" }
        );
        assert!(http_body::Body::is_end_stream(resp.body()));
        assert!(collect(resp).await.unwrap().to_bytes().is_empty());
        // The connection is clean: the next request on it gets its own answer.
        assert_eq!(pool.idle_count(), 1);
        let again = pool.send(request(method, ReqBody::empty())).await.unwrap();
        assert!(collect(again).await.unwrap().to_bytes().is_empty());
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn informational_heads_are_skipped() {
    let (addr, _) = app(|mut s, _| async move {
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let resp = pool(addr).send(get()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("link"));
    assert_eq!(collect(resp).await.unwrap().to_bytes(), "ok");
}

#[tokio::test]
async fn conflicting_content_lengths_are_an_error() {
    let (addr, _, _) =
        answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok").await;
    let err = pool(addr).send(get()).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Request(AppError::ContentLength)),
        "{err:?}"
    );
    let proxy = Proxy::start(addr, &[], &[]).await;
    let out = raw(
        proxy.inbound,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
}

/// An app that sends a head that never ends, counting the bytes it got out.
async fn endless_head() -> (SocketAddr, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    let (addr, _) = app(move |mut s, _| {
        let count = count.clone();
        async move {
            read_head(&mut s).await;
            if s.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                return;
            }
            let line = b"x-filler: 0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(64);
            // 64 MiB at most: far more than any buffer in the path.
            for _ in 0..(64 << 20) / line.len() {
                if s.write_all(&line).await.is_err() {
                    return;
                }
                count.fetch_add(line.len(), Ordering::SeqCst);
            }
        }
    })
    .await;
    (addr, written)
}

#[tokio::test]
async fn an_oversized_response_head_is_an_error_without_reading_it_all() {
    let (addr, written) = endless_head().await;
    let err = tokio::time::timeout(Duration::from_secs(5), pool(addr).send(get()))
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Request(AppError::HeadTooLarge | AppError::TooManyHeaders)
        ),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 16 << 20, "the client read {sent} bytes of head");

    let (addr, _) = endless_head().await;
    let proxy = Proxy::start(addr, &[], &[]).await;
    let out = raw(
        proxy.inbound,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
}

#[tokio::test]
async fn a_connection_the_app_closed_while_idle_is_replaced_even_for_a_post() {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let (addr, accepted) = app(move |mut s, _| {
        let record = record.clone();
        async move {
            let mut head = read_head(&mut s).await.unwrap();
            let mut body = [0u8; 3];
            s.read_exact(&mut body).await.unwrap();
            head.extend_from_slice(&body);
            record.lock().unwrap().push(head);
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Closed while idle, without saying so.
        }
    })
    .await;
    let pool = pool(addr);
    for _ in 0..3 {
        let body = Bytes::from_static(b"abc");
        let req = request(Method::POST, ReqBody::full(body));
        let resp = pool.send(req).await.expect("a POST on a fresh connection");
        assert_eq!(collect(resp).await.unwrap().to_bytes(), "ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    for got in seen.lock().unwrap().iter() {
        assert_eq!(
            got,
            b"POST /p?q=1 HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\n\r\nabc"
        );
    }
}

#[tokio::test]
async fn stray_bytes_from_an_idle_app_discard_the_connection() {
    let (addr, accepted) = app(|mut s, _| async move {
        while read_head(&mut s).await.is_some() {
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            // Not a response to anything: must never be read as the next one.
            let _ = s
                .write_all(b"HTTP/1.1 500 Stray\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    })
    .await;
    let pool = pool(addr);
    for _ in 0..3 {
        let resp = pool.send(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(collect(resp).await.unwrap().to_bytes(), "ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_early_413_reaches_the_client_while_its_body_is_still_being_sent() {
    let (addr, accepted) = app(|mut s, _| async move {
        read_head(&mut s).await;
        s.write_all(
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!",
        )
        .await
        .unwrap();
        // Never reads the body, and keeps the connection open well past the client's wait: the
        // answer must come from reading while writing, not from a failed write.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let proxy = Proxy::start(addr, &["--max-body-bytes", "1GiB"], &[]).await;
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    let total: usize = 256 << 20;
    s.write_all(
        format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {total}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !out.ends_with(b"big!") {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was being sent");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.ends_with("big!"), "{text}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    writer.abort();
}

#[tokio::test]
async fn an_app_that_dies_mid_body_fails_the_clients_body() {
    let (addr, _) = app(|mut s, _| async move {
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Dropped: the socket closes 990 bytes short.
    })
    .await;
    let err = collect(pool(addr).send(get()).await.unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Closed), "{err:?}");

    let proxy = Proxy::start(addr, &[], &[]).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        h1_client().request(
            Request::get(proxy.url("/"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("the body must fail, not hang");
    assert!(body.is_err(), "a truncated body ended cleanly");
}

#[tokio::test]
async fn a_101_tunnel_carries_bytes_both_ways() {
    let (addr, _) = app(|mut s, _| async move {
        let head = read_head(&mut s).await.unwrap();
        assert!(String::from_utf8_lossy(&head).contains("upgrade: test"));
        // Bytes of the new protocol right behind the head, read together with it.
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\nhello-from-app;")
            .await
            .unwrap();
        let mut ping = [0u8; 4];
        s.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping");
        s.write_all(b"pong").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let proxy = Proxy::start(addr, &[], &[]).await;
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    s.write_all(b"GET /t HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !out.ends_with(b"hello-from-app;") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the 101 and the app's first bytes");
    assert!(
        out.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    s.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"pong");
}

#[tokio::test]
async fn the_proxy_reuses_one_app_connection_for_sequential_requests() {
    let (addr, accepted, _) = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
    let proxy = Proxy::start(addr, &[], &[]).await;
    let client = h1_client();
    for _ in 0..20 {
        let (status, _, body) = common::get(&client, &proxy.url("/")).await.unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
