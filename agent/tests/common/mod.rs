//! Shared test harness: an in-test HTTP sink that decodes Loki protobuf+snappy (with the real
//! `logproto` messages compiled by prost), Loki JSON and OTLP; kubelet-style CRI log writers;
//! and helpers to run the real `outrigger-agent` binary.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::format_push_string,
    clippy::unused_self,
    clippy::ref_option
)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use outrigger_agent::proto::logproto::PushRequest;
use outrigger_agent::proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use outrigger_agent::proto::otlp::common::v1::any_value;
use prost::Message as _;

/// One received log entry.
#[derive(Debug, Clone)]
pub struct Got {
    pub labels: BTreeMap<String, String>,
    pub line: String,
    pub ts_ns: i64,
    pub meta: BTreeMap<String, String>,
}

/// What the sink answers.
#[derive(Debug, Clone)]
pub enum Mode {
    Accept,
    Status(u16),
    /// Answer `status` with `Retry-After: secs` for the next `n` requests, then accept.
    RetryAfter {
        status: u16,
        secs: u64,
        n: usize,
    },
}

#[derive(Debug, Default)]
pub struct SinkState {
    pub entries: Vec<Got>,
    pub requests: usize,
    pub request_times: Vec<Instant>,
    pub tenants: Vec<Option<String>>,
    pub content_types: Vec<String>,
    pub otlp_resources: Vec<BTreeMap<String, String>>,
}

/// The in-test sink.
pub struct Sink {
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// TLS handshakes that failed (e.g. the agent did not trust our certificate).
    pub tls_failures: Arc<Mutex<usize>>,
    pub state: Arc<Mutex<SinkState>>,
    pub mode: Arc<Mutex<Mode>>,
    _rt: std::thread::JoinHandle<()>,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = inner[ks..i].to_string();
        i += 2; // ="
        let mut val = String::new();
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' && i + 1 < b.len() {
                i += 1;
                val.push(match b[i] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                val.push(b[i] as char);
            }
            i += 1;
        }
        i += 1;
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

fn decode_loki_protobuf(body: &[u8]) -> Vec<Got> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy block format");
    let req = PushRequest::decode(raw.as_slice()).expect("logproto.PushRequest");
    let mut out = Vec::new();
    for s in req.streams {
        let labels = parse_labels(&s.labels);
        for e in s.entries {
            let ts = e.timestamp.unwrap();
            out.push(Got {
                labels: labels.clone(),
                line: e.line,
                ts_ns: ts.seconds * 1_000_000_000 + i64::from(ts.nanos),
                meta: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            });
        }
    }
    out
}

fn decode_loki_json(body: &[u8]) -> Vec<Got> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json body");
    let mut out = Vec::new();
    for s in v["streams"].as_array().unwrap() {
        let labels: BTreeMap<String, String> = s["stream"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for e in s["values"].as_array().unwrap() {
            let meta = e
                .get(2)
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                labels: labels.clone(),
                line: e[1].as_str().unwrap().to_string(),
                ts_ns: e[0].as_str().unwrap().parse().unwrap(),
                meta,
            });
        }
    }
    out
}

fn anyvalue_str(
    v: &Option<outrigger_agent::proto::otlp::common::v1::AnyValue>,
) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn decode_otlp(body: &[u8], resources: &mut Vec<BTreeMap<String, String>>) -> Vec<Got> {
    let req = ExportLogsServiceRequest::decode(body).expect("ExportLogsServiceRequest");
    let mut out = Vec::new();
    for rl in req.resource_logs {
        let res: BTreeMap<String, String> = rl
            .resource
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), anyvalue_str(&kv.value)))
            .collect();
        resources.push(res.clone());
        for sl in rl.scope_logs {
            for r in sl.log_records {
                let mut labels = res.clone();
                for kv in &r.attributes {
                    labels.insert(kv.key.clone(), anyvalue_str(&kv.value));
                }
                out.push(Got {
                    labels,
                    line: anyvalue_str(&r.body),
                    ts_ns: r.time_unix_nano as i64,
                    meta: BTreeMap::new(),
                });
            }
        }
    }
    out
}

impl Sink {
    pub fn start(mode: Mode) -> Sink {
        Self::start_with(mode, None)
    }

    /// An HTTPS sink: a real TLS handshake (tokio-rustls) with `tls` before HTTP/1.1.
    pub fn start_tls(mode: Mode, tls: Arc<rustls::ServerConfig>) -> Sink {
        Self::start_with(mode, Some(tokio_rustls::TlsAcceptor::from(tls)))
    }

    fn start_with(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Sink {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls_failures = Arc::new(Mutex::new(0));
        let fails = tls_failures.clone();
        let state = Arc::new(Mutex::new(SinkState::default()));
        let mode = Arc::new(Mutex::new(mode));
        let (tx, rx) = std::sync::mpsc::channel();
        let (st, md) = (state.clone(), mode.clone());
        let rt = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                loop {
                    let (s, _) = l.accept().await.unwrap();
                    let (st, md) = (st.clone(), md.clone());
                    let (tls, fails) = (tls.clone(), fails.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (st, md) = (st.clone(), md.clone());
                            async move { Ok::<_, std::convert::Infallible>(handle(req, &st, &md).await) }
                        });
                        if let Some(acc) = tls {
                            match acc.accept(s).await {
                                Ok(t) => {
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(t), svc)
                                        .await;
                                }
                                Err(_) => *fails.lock().unwrap() += 1,
                            }
                        } else {
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                        }
                    });
                }
            });
        });
        let addr = rx.recv().unwrap();
        Sink {
            addr,
            scheme,
            tls_failures,
            state,
            mode,
            _rt: rt,
        }
    }

    pub fn loki_url(&self) -> String {
        format!("{}://{}/loki/api/v1/push", self.scheme, self.addr)
    }

    pub fn otlp_url(&self) -> String {
        format!("{}://{}/v1/logs", self.scheme, self.addr)
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn entries(&self) -> Vec<Got> {
        self.state.lock().unwrap().entries.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().entries.len()
    }

    pub fn tls_failures(&self) -> usize {
        *self.tls_failures.lock().unwrap()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    st: &Mutex<SinkState>,
    md: &Mutex<Mode>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let tenant = req
        .headers()
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let answer = {
        let mut m = md.lock().unwrap();
        match &mut *m {
            Mode::Accept => None,
            Mode::Status(s) => Some((*s, None)),
            Mode::RetryAfter { status, secs, n } => {
                if *n == 0 {
                    None
                } else {
                    *n -= 1;
                    Some((*status, Some(*secs)))
                }
            }
        }
    };
    let mut s = st.lock().unwrap();
    s.requests += 1;
    s.request_times.push(Instant::now());
    if let Some((code, ra)) = answer {
        let mut r = Response::new(Full::new(Bytes::from_static(b"nope")));
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
        if let Some(secs) = ra {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return r;
    }
    s.tenants.push(tenant);
    s.content_types.push(ctype.clone());
    if path == "/v1/logs" {
        let mut res = Vec::new();
        let got = decode_otlp(&body, &mut res);
        s.entries.extend(got);
        s.otlp_resources.extend(res);
        let resp = ExportLogsServiceResponse::default().encode_to_vec();
        return Response::new(Full::new(Bytes::from(resp)));
    }
    let got = if ctype == "application/json" {
        decode_loki_json(&body)
    } else {
        decode_loki_protobuf(&body)
    };
    s.entries.extend(got);
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::NO_CONTENT;
    r
}

/// RFC3339Nano of now, as the kubelet/containerd write it.
pub fn rfc3339_now() -> String {
    rfc3339_at(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

/// RFC3339Nano of a time since the Unix epoch.
pub fn rfc3339_at(d: Duration) -> String {
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let dd = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// A container's log directory, written like the kubelet/containerd do.
pub struct Container {
    pub dir: PathBuf,
    pub ns: String,
    pub pod: String,
    pub uid: String,
    pub name: String,
}

impl Container {
    pub fn new(root: &Path, ns: &str, pod: &str, name: &str) -> Container {
        let uid = format!("uid-{pod}");
        let dir = root.join(format!("{ns}_{pod}_{uid}")).join(name);
        fs::create_dir_all(&dir).unwrap();
        Container {
            dir,
            ns: ns.into(),
            pod: pod.into(),
            uid,
            name: name.into(),
        }
    }

    pub fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.live())
            .unwrap()
    }

    /// Full lines, one write each.
    pub fn write(&self, stream: &str, msgs: &[String]) {
        let mut buf = String::new();
        for m in msgs {
            buf.push_str(&format!("{} {stream} F {m}\n", rfc3339_now()));
        }
        self.open().write_all(buf.as_bytes()).unwrap();
    }

    /// One logical line split into partial fragments (P ... P F).
    pub fn write_partial(&self, stream: &str, parts: &[&str]) {
        let mut buf = String::new();
        for (i, p) in parts.iter().enumerate() {
            let tag = if i + 1 == parts.len() { "F" } else { "P" };
            buf.push_str(&format!("{} {stream} {tag} {p}\n", rfc3339_now()));
        }
        self.open().write_all(buf.as_bytes()).unwrap();
    }

    pub fn write_raw(&self, raw: &[u8]) {
        self.open().write_all(raw).unwrap();
    }

    /// Kubelet rotation: rename `0.log` to `0.log.<stamp>`; the runtime reopens `0.log`.
    pub fn rotate(&self, stamp: &str) -> PathBuf {
        let to = self.dir.join(format!("0.log.{stamp}"));
        fs::rename(self.live(), &to).unwrap();
        to
    }

    /// Kubelet compression of a rotated file: `.tmp`, rename to `.gz`, remove the original.
    pub fn gzip(&self, rotated: &Path) {
        let data = fs::read(rotated).unwrap();
        let gz = PathBuf::from(format!("{}.gz", rotated.display()));
        let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        fs::rename(&tmp, &gz).unwrap();
        fs::remove_file(rotated).unwrap();
    }

    /// logrotate copytruncate.
    pub fn copytruncate(&self, stamp: &str) {
        fs::copy(self.live(), self.dir.join(format!("0.log.{stamp}"))).unwrap();
        OpenOptions::new()
            .write(true)
            .open(self.live())
            .unwrap()
            .set_len(0)
            .unwrap();
    }
}

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub metrics_addr: String,
    pub stderr_path: PathBuf,
}

pub use outrigger_test_support::free_port;

/// The agent's `--help` text (the run must succeed).
pub fn agent_help() -> String {
    let out = std::process::Command::new(agent_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_outrigger-agent")
}

impl Agent {
    pub fn spawn(root: &Path, state: &Path, args: &[&str]) -> Agent {
        Self::spawn_env(root, state, args, &[])
    }

    pub fn spawn_env(root: &Path, state: &Path, args: &[&str], envs: &[(&str, &str)]) -> Agent {
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let stderr_path = state.join(format!("agent-{port}.log"));
        // Test defaults, unless the test sets the flag itself.
        let defaults = [
            ("--node-name", "node-a"),
            ("--kube-metadata", "off"),
            ("--batch-max-wait-ms", "100"),
            ("--rotate-grace-ms", "300"),
            ("--retry-min-ms", "50"),
            ("--retry-max-ms", "1000"),
        ];
        let mut cmd = Command::new(agent_bin());
        cmd.env_remove("KUBERNETES_SERVICE_HOST");
        cmd.envs(envs.iter().copied());
        for (k, v) in defaults {
            if !args.contains(&k) {
                cmd.args([k, v]);
            }
        }
        let child = cmd
            .arg("--log-root")
            .arg(root)
            .arg("--state-dir")
            .arg(state)
            .arg("--metrics")
            .arg(&metrics_addr)
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut a = Agent {
            child,
            metrics_addr,
            stderr_path,
        };
        a.wait_ready();
        a
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.metrics_addr, path)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("agent exited ({st}); log:\n{}", self.log());
            }
            if let Some((200, _)) = self.get("/ready") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "agent not ready; log:\n{}",
            fs::read_to_string(&self.stderr_path).unwrap_or_default()
        );
    }

    /// Value of a metric sample line (exact name+labels as rendered).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn sigterm(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.0 GET over a real socket.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status: u16 = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `f` until true; panics after `secs` (a hang guard, not a timing claim).
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Groups received lines per (pod, container, stream).
pub fn per_stream(entries: &[Got]) -> BTreeMap<(String, String, String), Vec<String>> {
    let mut m: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for e in entries {
        m.entry((
            e.labels.get("pod").cloned().unwrap_or_default(),
            e.labels.get("container").cloned().unwrap_or_default(),
            e.labels.get("stream").cloned().unwrap_or_default(),
        ))
        .or_default()
        .push(e.line.clone());
    }
    m
}
