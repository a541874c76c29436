//! Shared integration-test harness: a real upstream app (hyper, HTTP/1.1) with scriptable
//! routes, the real `outrigger-proxy` binary as a child process, HTTP clients and tool lookup.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

pub type TestBody = BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Observable state of the test app.
#[derive(Default)]
pub struct AppState {
    pub hits: Mutex<HashMap<String, u32>>,
    pub connections: AtomicU32,
    pub last_headers: Mutex<Option<HeaderMap>>,
    /// `/drop-once`: how many more requests to drop without a response.
    pub drops_left: AtomicU32,
}

impl AppState {
    pub fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A real HTTP/1.1 upstream on 127.0.0.1.
pub struct App {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn app_route(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    *state.last_headers.lock().unwrap() = Some(req.headers().clone());
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match seg.as_slice() {
        ["hello"] => Response::new(full("hello")),
        ["headers"] => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                let _ = writeln!(out, "{}: {}", k, v.to_str().unwrap_or("?"));
            }
            Response::new(full(out))
        }
        ["echo"] => {
            // Stream the request body straight back.
            Response::new(req.into_body().boxed())
        }
        ["slow", ms] => {
            let ms: u64 = ms.parse().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full("slow done"))
        }
        ["consume", code] => {
            // Read the whole request body, then answer with `code`.
            let n = req
                .into_body()
                .collect()
                .await
                .map_or(0, |b| b.to_bytes().len());
            let mut r = Response::new(full(format!("read {n}")));
            *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
            r
        }
        ["status", code] => {
            let mut r = Response::new(full(format!("status {code}")));
            *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
            r
        }
        ["drop-once"] => {
            if state
                .drops_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                // Returning an error makes hyper close the connection without a response.
                return Err(std::io::Error::other("dropping connection on purpose"));
            }
            Response::new(full("recovered"))
        }
        ["big", n] => {
            let n: usize = n.parse().unwrap_or(1024);
            Response::new(full(vec![b'x'; n]))
        }
        _ => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

impl App {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AppState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| app_route(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }
}

/// A WebSocket echo server (tokio-tungstenite) on 127.0.0.1.
pub async fn websocket_echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use futures_util::{SinkExt as _, StreamExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[allow(unused_imports)] // each test binary uses a different subset
pub use outrigger_test_support::{free_addr, free_port};

pub mod gateway;

/// The real proxy binary as a child process.
pub struct Proxy {
    pub child: Child,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_outrigger-proxy")
}

impl Proxy {
    /// Start with `--app app` plus `args` (one worker unless they say otherwise); waits until
    /// `/live` answers.
    pub async fn start(app: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Self {
        let inbound = free_addr();
        let admin = free_addr();
        let mut cmd = Command::new(binary());
        cmd.arg("--inbound")
            .arg(inbound.to_string())
            .arg("--admin")
            .arg(admin.to_string())
            .arg("--app")
            .arg(app.to_string())
            .args(args)
            .env_remove("OUTRIGGER_TERMINATION_GRACE_PERIOD")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("OUTRIGGER_LOG", "info")
            // One core, as a sidecar usually gets (the current-thread runtime); a flag overrides.
            .env("OUTRIGGER_WORKERS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn outrigger-proxy");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let so = stdout.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                so.lock().unwrap().push(line);
            }
        });
        let se = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                se.lock().unwrap().push(line);
            }
        });
        let proxy = Self {
            child,
            inbound,
            admin,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((status, _)) = proxy.admin_get("/live").await
                && status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not come up; stderr: {:?}",
                proxy.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        proxy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.inbound, path)
    }

    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        let req = Request::get(format!("http://{}{}", self.admin, path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, _, body) = collected(Duration::from_secs(5), h1_client().request(req)).await?;
        Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
    }

    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.unwrap().1
    }

    /// `outrigger_proxy_<family>_total{reason="<reason>"}`, scraped now.
    pub async fn by_reason(&self, family: &str, reason: &str) -> f64 {
        let name = format!("outrigger_proxy_{family}_total");
        metric(
            &self.metrics().await,
            &name,
            &[&format!("reason=\"{reason}\"")],
        )
    }

    /// The status of `GET path` through the proxy (HTTP/1.1).
    pub async fn get_status(&self, path: &str) -> StatusCode {
        get(&h1_client(), &self.url(path)).await.unwrap().0
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Wait for exit (hang guard: `limit`).
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stdout lines once at least `n` have arrived. The proxy writes a request's access-log
    /// line when the response body ends, which can be after the client has read the body and
    /// the metrics counted it; a reader thread then moves it from the pipe. Hang guard: 5 s.
    pub async fn stdout_lines_at_least(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.stdout_lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} stdout lines after 5 s: {lines:?}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of `name` whose label text contains every `labels` fragment.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|f| l.contains(f))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn h1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Send a request and collect the response (hang guard 20 s).
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    collected(Duration::from_secs(20), client.request(req)).await
}

/// Awaits `response` and collects its body, within `limit` for both.
pub async fn collected<E: std::fmt::Debug>(
    limit: Duration,
    response: impl Future<Output = Result<Response<Incoming>, E>>,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let fut = async {
        let (head, body) = response.await.map_err(|e| format!("{e:?}"))?.into_parts();
        let body = body.collect().await.map_err(|e| format!("body: {e:?}"))?;
        Ok((head.status, head.headers, body.to_bytes()))
    };
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| "timeout".to_owned())?
}

pub async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    send(
        client,
        Request::get(url).body(Full::new(Bytes::new())).unwrap(),
    )
    .await
}

/// Write raw bytes, then read until EOF (hang guard `limit`).
pub async fn raw(addr: SocketAddr, data: &[u8], limit: Duration) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(data).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw HTTP/1.1 keep-alive connection that has completed one `GET /hello` (answered 200).
pub async fn kept_alive(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// The shared tool policy (see `outrigger_test_support::tools`): `None` after a loud skip, a
/// panic in CI.
#[allow(unused_imports)] // each test binary uses a different subset
pub use outrigger_test_support::{Pki, find_tool as tool, require_tool as require};
