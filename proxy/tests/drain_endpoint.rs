//! The admin port's `GET /drain`, in process, on real sockets: the proxy's `serve` on listeners
//! bound to 127.0.0.1:0, a real upstream app, raw HTTP/1.1 clients. Checks the token rules
//! (404 without a configured token, 403 for a missing or wrong one, each counted), and that an
//! accepted request starts the same drain as SIGTERM: `/ready` 503 at once, `Connection: close`
//! on kept-alive responses, in-flight requests finish, the answer (200) comes once the drain delay
//! is over, repeated calls are idempotent, and the process part ends only on the shutdown signal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{App, kept_alive, metric, raw};
use outrigger_proxy::config::Config;
use outrigger_proxy::drain::Outcome;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "per-pod-token-0123456789abcdef";
const DELAY: Duration = Duration::from_millis(800);

struct InProcess {
    inbound: SocketAddr,
    admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Outcome>,
}

async fn start(app: SocketAddr, token: Option<&str>) -> InProcess {
    let mut args = vec![
        "outrigger-proxy".to_owned(),
        "--app".into(),
        app.to_string(),
        "--drain-delay".into(),
        format!("{}ms", DELAY.as_millis()),
        "--drain-timeout".into(),
        "5s".into(),
        "--access-log".into(),
        "false".into(),
    ];
    if let Some(t) = token {
        args.extend(["--drain-token".into(), t.to_owned()]);
    }
    let config = Config::parse_from(args, &HashMap::<String, String>::new()).unwrap();
    let inbound_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let inbound = inbound_listener.local_addr().unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(outrigger_proxy::serve(
        inbound_listener,
        admin_listener,
        config,
        None,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    InProcess {
        inbound,
        admin,
        stop: Some(stop),
        task,
    }
}

impl InProcess {
    /// No drain started: still ready and serving; then the shutdown signal ends it gracefully.
    async fn assert_undrained_then_stop(mut self) {
        assert_eq!(request(self.admin, "/ready", &[]).await.0, 200);
        assert_eq!(request(self.inbound, "/hello", &[]).await.0, 200);
        self.stop.take().unwrap().send(()).unwrap();
        assert_eq!(self.task.await.unwrap(), Outcome::Graceful);
    }
}

/// One request on its own connection: (status, whole response text).
async fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    let text = raw(addr, req.as_bytes(), Duration::from_secs(10)).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn metrics(admin: SocketAddr) -> String {
    request(admin, "/metrics", &[]).await.1
}

/// `outrigger_proxy_drain_requests_total{result}` in a scrape.
fn drain_requests(metrics: &str, result: &str) -> f64 {
    metric(
        metrics,
        "outrigger_proxy_drain_requests_total",
        &[&format!("result=\"{result}\"")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_is_off_without_a_token() {
    let app = App::start().await;
    let proxy = start(app.addr, None).await;
    assert_eq!(request(proxy.admin, "/drain", &[]).await.0, 404);
    assert_eq!(
        request(proxy.admin, "/drain", &[("X-Outrigger-Drain-Token", TOKEN)])
            .await
            .0,
        404
    );
    let m = metrics(proxy.admin).await;
    assert_eq!(drain_requests(&m, "disabled"), 2.0, "{m}");
    proxy.assert_undrained_then_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_forbidden_and_counted() {
    let app = App::start().await;
    let proxy = start(app.addr, Some(TOKEN)).await;
    let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    let prefix = &TOKEN[..TOKEN.len() - 1];
    for headers in [
        vec![],
        vec![("X-Outrigger-Drain-Token", wrong.as_str())],
        vec![("X-Outrigger-Drain-Token", prefix)],
        vec![("X-Outrigger-Drain-Token", "")],
    ] {
        let (status, text) = request(proxy.admin, "/drain", &headers).await;
        assert_eq!(status, 403, "{headers:?}: {text}");
    }
    // HEAD never starts a drain, even with the right token.
    let text = raw(
        proxy.admin,
        format!("HEAD /drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Outrigger-Drain-Token: {TOKEN}\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
    let m = metrics(proxy.admin).await;
    assert_eq!(drain_requests(&m, "forbidden"), 4.0, "{m}");
    assert_eq!(drain_requests(&m, "accepted"), 0.0, "{m}");
    assert_eq!(metric(&m, "outrigger_proxy_draining", &[]), 0.0, "{m}");
    proxy.assert_undrained_then_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_drains_like_sigterm_and_waits_for_the_signal() {
    let app = App::start().await;
    let mut proxy = start(app.addr, Some(TOKEN)).await;
    assert_eq!(request(proxy.admin, "/ready", &[]).await.0, 200);
    let mut idle = kept_alive(proxy.inbound).await;
    // In flight across the whole drain delay.
    let slow = tokio::spawn({
        let inbound = proxy.inbound;
        async move { request(inbound, "/slow/1500", &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let admin = proxy.admin;
    let first = tokio::spawn(async move {
        let r = request(admin, "/drain", &[("X-Outrigger-Drain-Token", TOKEN)]).await;
        (r, started.elapsed())
    });
    // /ready turns 503 at once (10 ms polls, guard 2 s).
    loop {
        if request(proxy.admin, "/ready", &[]).await.0 == 503 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "/ready never 503"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started.elapsed() < DELAY, "/ready took the whole delay");
    // A kept-alive connection is still served during the delay, and told to close.
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut resp))
        .await
        .expect("closed after the response")
        .unwrap();
    let resp = String::from_utf8_lossy(&resp).to_lowercase();
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    assert!(resp.contains("connection: close"), "{resp}");
    // New connections are still accepted during the delay.
    assert_eq!(request(proxy.inbound, "/hello", &[]).await.0, 200);
    let m = metrics(proxy.admin).await;
    assert_eq!(metric(&m, "outrigger_proxy_draining", &[]), 1.0, "{m}");

    let ((status, text), took) = first.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("draining\n"), "{text}");
    assert!(
        took >= DELAY,
        "answered after {took:?}, before the drain delay"
    );
    // Idempotent: a second call answers 200 at once.
    let again = Instant::now();
    assert_eq!(
        request(proxy.admin, "/drain", &[("X-Outrigger-Drain-Token", TOKEN)])
            .await
            .0,
        200
    );
    assert!(again.elapsed() < DELAY, "{:?}", again.elapsed());
    // The in-flight request finished with its answer.
    let (status, text) = slow.await.unwrap();
    assert_eq!(status, 200, "{text}");
    // The listener is closed once the delay is over.
    assert!(tokio::net::TcpStream::connect(proxy.inbound).await.is_err());
    // The drain is done, but the proxy stays up (admin answering) until the shutdown signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!proxy.task.is_finished());
    assert_eq!(request(proxy.admin, "/live", &[]).await.0, 200);
    assert_eq!(request(proxy.admin, "/ready", &[]).await.0, 503);
    let m = metrics(proxy.admin).await;
    assert_eq!(drain_requests(&m, "accepted"), 2.0, "{m}");
    proxy.stop.take().unwrap().send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), &mut proxy.task)
        .await
        .expect("exits at once on the signal")
        .unwrap();
    assert_eq!(outcome, Outcome::Graceful);
}
