//! An in-test HTTP sink that decodes what the agent sends: Loki protobuf+snappy (with the real
//! `logproto` messages compiled by prost), Loki JSON and OTLP; it can answer errors on demand.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use outrigger_agent::proto::logproto::PushRequest;
use outrigger_agent::proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use outrigger_agent::proto::otlp::common::v1::any_value;
use prost::Message as _;

use super::{http1_conn, serve_in_thread};

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

fn anyvalue_str(v: &Option<outrigger_agent::proto::otlp::common::v1::AnyValue>) -> String {
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
        let (st, md) = (state.clone(), mode.clone());
        let (addr, rt) = serve_in_thread(Arc::default(), move |s| {
            let (st, md) = (st.clone(), md.clone());
            let (tls, fails) = (tls.clone(), fails.clone());
            let answer = move |req| {
                let (st, md) = (st.clone(), md.clone());
                async move { handle(req, &st, &md).await }
            };
            async move {
                match tls {
                    Some(acc) => match acc.accept(s).await {
                        Ok(t) => http1_conn(t, answer).await,
                        Err(_) => *fails.lock().unwrap() += 1,
                    },
                    None => http1_conn(s, answer).await,
                }
            }
        });
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
