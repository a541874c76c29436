//! Idle HTTP/1 keep-alive connections ("parked": waiting for their next request with no HTTP
//! buffers, counted by `outrigger_proxy_parked_connections`): the real binary, a real upstream
//! and raw client sockets. A waiting connection must serve the next request like any keep-alive
//! connection (no `Connection: close`, pipelined and split heads survive, bodies too), the client
//! closing it releases it, and the drain closes it. Durations are hang guards, never performance
//! assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::time::{Duration, Instant};

use common::{App, Proxy, metric};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const GET: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

/// A raw HTTP/1.1 client connection and the bytes it has read past the last response.
struct Conn {
    s: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    async fn open(proxy: &Proxy) -> Self {
        let s = TcpStream::connect(proxy.inbound).await.unwrap();
        Self {
            s,
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// `GET /hello`, answered `hello` on a connection kept alive.
    async fn hello(&mut self) {
        self.send(GET).await;
        let (head, body) = self.response().await;
        assert_keep_alive(&head);
        assert_eq!(body, "hello");
    }

    /// Reads one response (`Content-Length` framed); returns (head, body).
    async fn response(&mut self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if self.pending.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.pending[end + 4..end + 4 + len]).into_owned();
                    self.pending.drain(..end + 4 + len);
                    return (head, body);
                }
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), self.s.read(&mut buf))
                .await
                .expect("response within 5 s")
                .unwrap();
            assert!(n > 0, "connection closed; got so far: {:?}", self.pending);
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

async fn parked(proxy: &Proxy) -> f64 {
    metric(
        &proxy.metrics().await,
        "outrigger_proxy_parked_connections",
        &[],
    )
}

/// Polls the parked-connections gauge until it equals `want` (hang guard 5 s).
async fn wait_parked(proxy: &Proxy, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = parked(proxy).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "parked connections stayed {now}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_keep_alive(head: &str) {
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn idle_connection_is_parked_and_served_again() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--park-after", "50ms"], &[]).await;
    let mut s = Conn::open(&proxy).await;

    s.hello().await;
    wait_parked(&proxy, 1.0).await;

    // The parked connection serves the next request like any keep-alive connection.
    s.hello().await;
    wait_parked(&proxy, 1.0).await;

    // Two pipelined requests wake it: both answered, in order.
    s.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (head, _) = s.response().await;
    assert_keep_alive(&head);
    let (head, body) = s.response().await;
    assert!(head.starts_with("http/1.1 201"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, "status 201");
    wait_parked(&proxy, 1.0).await;

    // A head split across a pause: the first part wakes the connection (no longer idle), the
    // rest completes it; nothing is lost or answered early.
    s.send(b"GET /hello HTTP/1.1\r\nHo").await;
    wait_parked(&proxy, 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.send(b"st: x\r\n\r\n").await;
    let (head, body) = s.response().await;
    assert_keep_alive(&head);
    assert_eq!(body, "hello");

    // A pipelined request whose head is split the same way, behind a complete one.
    wait_parked(&proxy, 1.0).await;
    s.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHo")
        .await;
    let (head, _) = s.response().await;
    assert_keep_alive(&head);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.send(b"st: x\r\n\r\n").await;
    let (head, _) = s.response().await;
    assert_keep_alive(&head);

    // An exchange with a request body (read to its end) leaves the connection waiting too,
    // and a chunked body with the next request behind it in the same write.
    wait_parked(&proxy, 1.0).await;
    s.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    let (head, body) = s.response().await;
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, "abc");
    wait_parked(&proxy, 1.0).await;
    s.send(b"POST /consume/200 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (head, body) = s.response().await;
    assert_keep_alive(&head);
    assert_eq!(body, "read 2");
    let (head, body) = s.response().await;
    assert_keep_alive(&head);
    assert_eq!(body, "hello");
    wait_parked(&proxy, 1.0).await;
    s.hello().await;
    wait_parked(&proxy, 1.0).await;

    // The client closing a parked connection releases it.
    drop(s);
    wait_parked(&proxy, 0.0).await;
    assert_eq!(app.state.hits("/hello"), 8);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "outrigger_proxy_connections_total", &[]),
        1.0,
        "every request above went over the one client connection"
    );
}

/// `--park-after` is still accepted; an idle connection holds no HTTP buffers whatever it says,
/// so it is counted as soon as it waits.
#[tokio::test]
async fn park_after_no_longer_delays_anything() {
    let app = App::start().await;
    for park_after in ["0", "10s"] {
        let proxy = Proxy::start(app.addr, &["--park-after", park_after], &[]).await;
        let mut s = Conn::open(&proxy).await;
        for _ in 0..2 {
            s.hello().await;
            wait_parked(&proxy, 1.0).await;
        }
    }
}

/// A proxy (`--park-after park_after`) whose drain serves for `delay`, then waits up to `timeout`.
async fn draining_parker(app: &App, park_after: &str, delay: &str, timeout: &str) -> Proxy {
    let park = ["--park-after", park_after];
    let drain = ["--drain-delay", delay, "--drain-timeout", timeout];
    Proxy::start(app.addr, &[&park[..], &drain].concat(), &[]).await
}

#[tokio::test]
async fn drain_answers_parked_connections_with_close_then_closes_them() {
    let app = App::start().await;
    let mut proxy = draining_parker(&app, "20ms", "1s", "2s").await;
    let mut busy = Conn::open(&proxy).await;
    let mut idle = Conn::open(&proxy).await;
    busy.hello().await;
    idle.hello().await;
    wait_parked(&proxy, 2.0).await;

    proxy.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // During the drain delay a parked connection is still served, told to close, and closed.
    busy.send(GET).await;
    let (head, body) = busy.response().await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "hello");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), busy.s.read_to_end(&mut rest))
        .await
        .expect("closed after the response")
        .unwrap();
    assert!(rest.is_empty());

    // The one left parked is closed cleanly (EOF, no bytes) when the listener closes.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.s.read_to_end(&mut rest))
        .await
        .expect("parked connection closed by the drain")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

/// utime + stime of the proxy process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after "pid (comm)": state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn an_idle_connection_does_not_spin_during_the_drain() {
    // An idle connection waits through the drain delay without waking its task, then closes.
    let app = App::start().await;
    let mut proxy = draining_parker(&app, "100ms", "2s", "1s").await;
    let mut s = Conn::open(&proxy).await;
    s.hello().await;
    proxy.sigterm();
    let pid = proxy.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let used = cpu_ticks(pid) - before;
    // A spinning task burns ~1.2 s (120 ticks) here; an idle proxy next to nothing.
    assert!(
        used < 40,
        "proxy used {used} ticks of CPU while idle in the drain"
    );
    assert_eq!(parked(&proxy).await, 1.0);
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

/// Every wait for a next request counts once in `parks_total`, at whatever cadence the
/// requests come (it costs nothing to wait); a pipelined request found in hand is no wait.
#[tokio::test]
async fn every_idle_wait_is_counted_once() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &["--park-after", "20ms"], &[]).await;
    let parks = |text: String| metric(&text, "outrigger_proxy_parks_total", &[]);
    let mut s = Conn::open(&proxy).await;
    s.hello().await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.hello().await;
    }
    wait_parked(&proxy, 1.0).await;
    assert_eq!(parks(proxy.metrics().await), 9.0);
    s.send(&[GET, GET].concat()).await;
    for _ in 0..2 {
        let (head, _) = s.response().await;
        assert_keep_alive(&head);
    }
    wait_parked(&proxy, 1.0).await;
    assert_eq!(parks(proxy.metrics().await), 10.0);
    drop(s);
    wait_parked(&proxy, 0.0).await;
}
