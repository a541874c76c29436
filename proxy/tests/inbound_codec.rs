//! The inbound HTTP/1.1 codec against the real binary, byte for byte from raw client sockets:
//! pipelining, chunked request bodies with trailers, request framing errors (CL+TE, bad
//! Content-Length, oversized heads), HTTP/1.0 keep-alive rules, bodyless responses (HEAD, 204,
//! 304), `Expect: 100-continue`, and heads split across reads. (The upgrade hand-off is covered
//! by `http.rs`'s WebSocket test.) Durations are hang guards, never performance assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{App, Proxy, raw};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(5);

/// The responses in `out`, split at their status lines.
fn responses(out: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = out.match_indices("HTTP/1.").map(|(i, _)| i).collect();
    starts.push(out.len());
    starts.windows(2).map(|w| &out[w[0]..w[1]]).collect()
}

/// Reads from `s` until `out` holds `want` (hang guard [`LIMIT`]).
async fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, want: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(out).contains(want) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {want:?} within 5 s; got {:?}",
                    String::from_utf8_lossy(out)
                )
            })
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(out));
        out.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let out = raw(
        proxy.inbound,
        b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /consume/202 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd\
          GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        LIMIT,
    )
    .await;
    let r = responses(&out);
    assert_eq!(r.len(), 3, "{out:?}");
    assert!(r[0].starts_with("HTTP/1.1 201 Created\r\n") && r[0].ends_with("status 201"));
    assert!(r[1].starts_with("HTTP/1.1 202 Accepted\r\n") && r[1].ends_with("read 4"));
    assert!(r[2].starts_with("HTTP/1.1 200 OK\r\n") && r[2].ends_with("\r\n\r\nhello"));
    assert!(
        r[2].to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n")
    );
    assert!(!r[0].to_ascii_lowercase().contains("connection: close"));
    // Every response carries a Date, as hyper's did.
    assert!(
        r.iter()
            .all(|r| r.to_ascii_lowercase().contains("\r\ndate: "))
    );
}

/// An app that records each request's bytes up to the end of a chunked body and answers `ok`.
async fn recording_app() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.ends_with(b"0\r\nx-sum: 6\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).into_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn chunked_request_body_with_trailers_reaches_the_app() {
    let (app, seen) = recording_app().await;
    let proxy = Proxy::start(app, &[], &[]).await;
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    // Split inside a chunk line, inside chunk data and inside the trailer section.
    for part in [
        &b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n3\r"[..],
        b"\nabc\r\n3;ext=1\r\nde",
        b"f\r\n0\r\nx-su",
        b"m: 6\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        s.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "\r\n\r\nok").await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let req = seen[0].to_ascii_lowercase();
    assert!(req.starts_with("post /up http/1.1\r\n"), "{req:?}");
    assert!(
        req.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{req:?}"
    );
    let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
    // The chunk boundaries are the proxy's; the data and the trailer field are the client's.
    let mut data = String::new();
    let mut rest = body;
    loop {
        let (line, after) = rest.split_once("\r\n").unwrap();
        let len = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
        if len == 0 {
            assert_eq!(after, "x-sum: 6\r\n\r\n");
            break;
        }
        data.push_str(&after[..len]);
        rest = &after[len + 2..];
    }
    assert_eq!(data, "abcdef");
}

async fn assert_rejected(proxy: &Proxy, app: &App, request: &[u8], status: &str) {
    let out = raw(proxy.inbound, request, LIMIT).await;
    assert!(out.starts_with(status), "{out:?}");
    // The connection is closed after the answer (`raw` read to EOF within its guard).
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out:?}"
    );
    assert_eq!(app.state.hits("/x"), 0);
}

#[tokio::test]
async fn request_framing_errors_are_400() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    for request in [
        // Both Content-Length and Transfer-Encoding.
        &b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        // Content-Length that is not a number, or values that disagree.
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        // A transfer coding that does not end in chunked.
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        // A malformed chunked body: the request reaches the app, the body fails, 400.
    ] {
        assert_rejected(&proxy, &app, request, "HTTP/1.1 400 Bad Request\r\n").await;
    }
    assert_eq!(
        proxy
            .by_reason("local_responses", "malformed_request")
            .await,
        4.0
    );
    let m = proxy.metrics().await;
    assert_eq!(
        common::metric(
            &m,
            "outrigger_proxy_requests_total",
            &["method=\"other\"", "status_code=\"400\""]
        ),
        4.0,
        "{m}"
    );
}

#[tokio::test]
async fn oversized_heads_are_431_and_long_targets_414() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--max-header-bytes", "2KiB"], &[]).await;
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    assert_rejected(&proxy, &app, big.as_bytes(), "HTTP/1.1 431 ").await;
    // The same head trickled in small writes: the limit holds across reads.
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    for part in big.as_bytes().chunks(500) {
        if s.write_all(part).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    let long = format!("GET /x{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(3000));
    assert_rejected(&proxy, &app, long.as_bytes(), "HTTP/1.1 414 ").await;
    assert_eq!(
        proxy
            .by_reason("local_responses", "headers_too_large")
            .await,
        2.0
    );
    assert_eq!(
        proxy.by_reason("local_responses", "uri_too_long").await,
        1.0
    );
}

#[tokio::test]
async fn http10_and_connection_close_keep_alive_rules() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    // HTTP/1.0 without keep-alive: answered in HTTP/1.0 and closed.
    let out = raw(proxy.inbound, b"GET /hello HTTP/1.0\r\n\r\n", LIMIT).await;
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out:?}");
    // HTTP/1.1 with Connection: close: told and closed.
    let out = raw(
        proxy.inbound,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        LIMIT,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
    // HTTP/1.0 with keep-alive: kept open and told so; the next request is served on it.
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    s.write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "\r\n\r\nhello").await;
    let first = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(first.starts_with("http/1.0 200 ok\r\n"), "{first:?}");
    assert!(
        first.contains("\r\nconnection: keep-alive\r\n"),
        "{first:?}"
    );
    assert!(first.contains("\r\ncontent-length: 5\r\n"), "{first:?}");
    s.write_all(b"GET /status/201 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut rest))
        .await
        .expect("closed after the HTTP/1.0 request without keep-alive")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.0 201 Created\r\n"), "{rest:?}");
    assert!(rest.ends_with("status 201"), "{rest:?}");
    assert_eq!(app.state.hits("/hello"), 3);
}

#[tokio::test]
async fn head_204_and_304_responses_have_no_body() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let out = raw(
        proxy.inbound,
        b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /status/304 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        LIMIT,
    )
    .await;
    let r = responses(&out);
    assert_eq!(r.len(), 4, "{out:?}");
    assert!(r[0].starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    // HEAD keeps the length the GET would have had, without the bytes.
    assert!(
        r[0].to_ascii_lowercase()
            .contains("\r\ncontent-length: 5\r\n"),
        "{out:?}"
    );
    assert!(r[1].starts_with("HTTP/1.1 204 No Content\r\n"), "{out:?}");
    assert!(r[2].starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out:?}");
    for bodyless in &r[..3] {
        assert!(bodyless.ends_with("\r\n\r\n"), "{out:?}");
        assert!(
            !bodyless.to_ascii_lowercase().contains("transfer-encoding"),
            "{out:?}"
        );
    }
    assert!(
        !r[1].to_ascii_lowercase().contains("content-length"),
        "{out:?}"
    );
    assert!(r[3].ends_with("\r\n\r\nhello"), "{out:?}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--max-body-bytes", "1KiB"], &[]).await;
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    s.write_all(b"POST /consume/200 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "\r\n\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    s.write_all(b"abc").await.unwrap();
    out.clear();
    read_until(&mut s, &mut out, "read 3").await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 OK\r\n"));

    // A body refused before it is read gets no 100, only the answer (and the connection closes,
    // since the body was never read).
    let out = raw(
        proxy.inbound,
        b"POST /consume/200 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
        LIMIT,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413 "), "{out:?}");
    assert!(!out.contains("100 Continue"), "{out:?}");
}

#[tokio::test]
async fn a_head_split_across_reads_is_served() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    for part in [
        &b"GE"[..],
        b"T /hel",
        b"lo HTTP/1.1\r",
        b"\nHost: x\r\nConnec",
        b"tion: close\r\n\r",
        b"\n",
    ] {
        s.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out:?}");
    assert_eq!(app.state.hits("/hello"), 1);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_request() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let in_flight = |m: String| common::metric(&m, "outrigger_proxy_requests_in_flight", &[]);
    let mut s = TcpStream::connect(proxy.inbound).await.unwrap();
    s.write_all(b"GET /slow/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(in_flight(proxy.metrics().await), 1.0);
    drop(s);
    // Well before the app would answer.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while in_flight(proxy.metrics().await) != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
