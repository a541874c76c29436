//! Sinks: batching by bytes and time, HTTP delivery with retries, and acknowledgements back to
//! the reader. A batch is acknowledged (its files' offsets may be checkpointed) only when the
//! sink answered success, or answered a non-retryable rejection (counted). Network errors, 408,
//! 429 and 5xx are retried with exponential backoff and equal jitter, honouring `Retry-After`,
//! until they succeed or the shutdown deadline passes; an unacknowledged batch is simply read
//! again after restart, so an outage never loses data while the files are on disk.
//!
//! A batch is sent when it reaches `batch_bytes`, when its first record waited `batch_wait`, or
//! early when the reader reports it caught up after draining a backlog of at least a batch (the
//! rest of that backlog is not held back for `batch_wait`; a trickle is still batched by time).

pub mod loki;
pub mod otlp;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use file_tailer::FileId;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::kube_meta::MetaStore;
use crate::metrics::{Metrics, SinkMetrics};
use crate::record::Record;

/// Which sink.
#[derive(Debug, Clone)]
pub enum Kind {
    Loki {
        encoding: loki::Encoding,
        tenant: Option<String>,
    },
    Otlp,
}

/// Sink settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kind: Kind,
    pub url: hyper::Uri,
    pub node: String,
    pub batch_bytes: usize,
    pub batch_wait: Duration,
    pub request_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// TLS client settings, used when `url` is `https://`.
    pub tls: Arc<rustls::ClientConfig>,
}

/// The sink HTTP client: plain HTTP for `http://`, rustls for `https://`.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What the reader hands a sink, in reading order.
#[derive(Debug, Clone)]
pub enum Input {
    /// Records, in the order they were read.
    Records(Arc<[Arc<Record>]>),
    /// The reader has caught up with every file: nothing more to read right now.
    CaughtUp,
}

/// Acknowledgement from sink `sink`: offsets per file.
#[derive(Debug)]
pub struct Ack {
    pub sink: usize,
    pub offsets: Vec<(FileId, u64)>,
}

/// Outcome of one attempt.
enum Outcome {
    Delivered,
    /// Not retried; `n` entries counted as rejected.
    Rejected(u64, String),
    Retry(&'static str, Option<Duration>),
}

/// Runs one sink until its input closes and everything is delivered (or the shutdown deadline
/// passed: `deadline` switches to `true`).
pub async fn run(
    idx: usize,
    cfg: SinkConfig,
    mut rx: mpsc::Receiver<Input>,
    acks: std::sync::mpsc::Sender<Ack>,
    metrics: Arc<Metrics>,
    meta: Arc<MetaStore>,
    deadline: watch::Receiver<bool>,
) {
    let cfg = Arc::new(cfg);
    // No Nagle: the request head and the last body segment must not wait for a delayed ACK.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // The TLS layer hands it https:// URIs too.
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*cfg.tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let mut pending: Vec<Arc<Record>> = Vec::new();
    let mut closed = false;
    // Bytes received since the reader last caught up, and whether what is pending is the tail
    // of a drained backlog that goes out now instead of after `batch_wait`.
    let mut since_caught_up: usize = 0;
    let mut flush = false;
    // One batch in flight while the next one is filled and encoded: overlaps our encoding with
    // the network and the receiver, and still delivers (and acknowledges) batches in order.
    let mut inflight: Option<tokio::task::JoinHandle<(bool, Encoded)>> = None;
    loop {
        if closed && pending.is_empty() {
            break;
        }
        // Fill a batch: up to batch_bytes, or batch_wait after its first record.
        let mut bytes: usize = pending.iter().map(|r| r.line.len()).sum();
        let started = Instant::now();
        while !closed && !flush && bytes < cfg.batch_bytes {
            let wait = if pending.is_empty() {
                Duration::from_secs(3600)
            } else {
                cfg.batch_wait.saturating_sub(started.elapsed())
            };
            if wait.is_zero() {
                break;
            }
            // Acknowledge the in-flight batch as soon as it is answered, even while idle.
            let got = if let Some(h) = inflight.as_mut() {
                tokio::select! {
                    res = h => Wake::Answered(res),
                    r = tokio::time::timeout(wait, rx.recv()) => Wake::Input(r),
                }
            } else {
                Wake::Input(tokio::time::timeout(wait, rx.recv()).await)
            };
            match got {
                Wake::Answered(res) => {
                    inflight = None;
                    if !acknowledge(idx, res, &acks) {
                        return;
                    }
                }
                Wake::Input(Ok(Some(Input::Records(chunk)))) => {
                    for r in chunk.iter() {
                        bytes += r.line.len();
                        since_caught_up += r.line.len();
                        pending.push(r.clone());
                    }
                }
                Wake::Input(Ok(Some(Input::CaughtUp))) => {
                    // At least a batch arrived without a pause: a backlog was drained, more is
                    // not coming soon, so waiting would only delay the rest. Less than a batch
                    // between catch-ups is a trickle, batched by time to keep requests few.
                    flush = since_caught_up >= cfg.batch_bytes && !pending.is_empty();
                    since_caught_up = 0;
                }
                Wake::Input(Ok(None)) => closed = true,
                Wake::Input(Err(_)) => break,
            }
        }
        if pending.is_empty() {
            flush = false;
            continue;
        }
        // Take up to batch_bytes (at least one record).
        let mut take = 0;
        let mut b = 0;
        for r in &pending {
            if take > 0 && b + r.line.len() > cfg.batch_bytes {
                break;
            }
            b += r.line.len();
            take += 1;
        }
        let batch: Vec<Arc<Record>> = pending.drain(..take).collect();
        if pending.is_empty() {
            flush = false;
        }
        let enc = encode(&cfg, batch, &meta);
        if let Some(prev) = inflight.take()
            && !finish(idx, prev, &acks).await
        {
            return;
        }
        inflight = Some(tokio::spawn(deliver(
            cfg.clone(),
            client.clone(),
            enc,
            metrics.clone(),
            deadline.clone(),
        )));
    }
    if let Some(prev) = inflight.take() {
        finish(idx, prev, &acks).await;
    }
}

type Answer = Result<(bool, Encoded), tokio::task::JoinError>;

/// What woke the batching loop.
enum Wake {
    Answered(Answer),
    Input(Result<Option<Input>, tokio::time::error::Elapsed>),
}

/// Waits for an in-flight batch and acknowledges its offsets. False if it was not delivered.
async fn finish(
    idx: usize,
    h: tokio::task::JoinHandle<(bool, Encoded)>,
    acks: &std::sync::mpsc::Sender<Ack>,
) -> bool {
    acknowledge(idx, h.await, acks)
}

/// Sends the acknowledgement for an answered batch. False if it was not delivered.
fn acknowledge(idx: usize, res: Answer, acks: &std::sync::mpsc::Sender<Ack>) -> bool {
    let Ok((ok, enc)) = res else {
        return false;
    };
    if !ok {
        tracing::warn!(
            sink = idx,
            entries = enc.batch.len(),
            "shutdown deadline: batch not delivered, it will be read again after restart"
        );
        return false;
    }
    let mut offsets: HashMap<FileId, u64> = HashMap::new();
    for r in &enc.batch {
        for &(file, commit) in std::iter::once(&(r.file, r.commit)).chain(&r.also) {
            let e = offsets.entry(file).or_insert(0);
            *e = (*e).max(commit);
        }
    }
    let _ = acks.send(Ack {
        sink: idx,
        offsets: offsets.into_iter().collect(),
    });
    true
}

/// A batch encoded and ready to send.
struct Encoded {
    batch: Vec<Arc<Record>>,
    body: Bytes,
    ctype: &'static str,
}

fn encode(cfg: &SinkConfig, batch: Vec<Arc<Record>>, meta: &MetaStore) -> Encoded {
    let (body, ctype) = match &cfg.kind {
        Kind::Loki {
            encoding: loki::Encoding::Protobuf,
            ..
        } => (
            loki::encode_protobuf(&batch, &cfg.node, meta),
            "application/x-protobuf",
        ),
        Kind::Loki {
            encoding: loki::Encoding::Json,
            ..
        } => (
            loki::encode_json(&batch, &cfg.node, meta),
            "application/json",
        ),
        Kind::Otlp => (
            otlp::encode(&batch, &cfg.node, meta),
            "application/x-protobuf",
        ),
    };
    Encoded {
        batch,
        body: Bytes::from(body),
        ctype,
    }
}

fn sink_metrics<'a>(kind: &Kind, metrics: &'a Metrics) -> &'a SinkMetrics {
    match kind {
        Kind::Loki { .. } => &metrics.loki,
        Kind::Otlp => &metrics.otlp,
    }
}

/// Equal jitter: uniform in `[b/2, b]` (whole milliseconds). Unlike full jitter (`[0, b]`) a retry
/// never comes right back at a sink that is failing, yet concurrent agents still spread out.
fn equal_jitter(b: Duration) -> Duration {
    let ms = b.as_millis() as u64;
    Duration::from_millis(fastrand::u64(ms / 2..=ms.max(1)))
}

/// Delivers one batch, retrying as needed. Returns false if the shutdown deadline hit first.
async fn deliver(
    cfg: Arc<SinkConfig>,
    client: HttpClient,
    enc: Encoded,
    metrics: Arc<Metrics>,
    mut deadline: watch::Receiver<bool>,
) -> (bool, Encoded) {
    let ok = deliver_inner(
        &cfg,
        &client,
        &enc,
        sink_metrics(&cfg.kind, &metrics),
        &mut deadline,
    )
    .await;
    (ok, enc)
}

async fn deliver_inner(
    cfg: &SinkConfig,
    client: &HttpClient,
    enc: &Encoded,
    sm: &SinkMetrics,
    deadline: &mut watch::Receiver<bool>,
) -> bool {
    let (batch, body, ctype) = (&enc.batch, &enc.body, enc.ctype);
    let line_bytes: u64 = batch.iter().map(|r| r.line.len() as u64).sum();
    let oldest = batch.iter().map(|r| r.ts_ns).min().unwrap_or(0);
    sm.oldest_unacked_ns.set(oldest.max(1));
    let mut backoff = cfg.backoff_min;
    let mut attempt = 0u32;
    loop {
        if *deadline.borrow() {
            return false;
        }
        attempt += 1;
        let outcome = attempt_once(cfg, client, body.clone(), ctype).await;
        match outcome {
            Outcome::Delivered => {
                sm.lines_sent.inc_by(batch.len() as u64);
                sm.bytes_sent.inc_by(line_bytes);
                sm.batches.inc();
                sm.oldest_unacked_ns.set(0);
                return true;
            }
            Outcome::Rejected(n, why) => {
                let n = if n == 0 { batch.len() as u64 } else { n };
                tracing::error!(url = %cfg.url, entries = n, reason = %why, "sink rejected batch; not retrying");
                sm.rejected.inc_by(n);
                sm.error("rejected");
                if n < batch.len() as u64 {
                    sm.lines_sent.inc_by(batch.len() as u64 - n);
                }
                sm.batches.inc();
                sm.oldest_unacked_ns.set(0);
                return true;
            }
            Outcome::Retry(kind, retry_after) => {
                sm.error(kind);
                sm.retries.inc();
                // Retry-After wins when given.
                let wait = retry_after
                    .map_or_else(|| equal_jitter(backoff), |r| r.min(cfg.backoff_max * 4));
                if attempt <= 3 || attempt % 20 == 0 {
                    tracing::warn!(url = %cfg.url, kind, attempt, wait_ms = wait.as_millis() as u64, "send failed, retrying");
                }
                backoff = (backoff * 2).min(cfg.backoff_max);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = deadline.wait_for(|d| *d) => return false,
                }
            }
        }
    }
}

fn parse_retry_after(v: &hyper::header::HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

async fn attempt_once(
    cfg: &SinkConfig,
    client: &HttpClient,
    body: Bytes,
    ctype: &'static str,
) -> Outcome {
    let mut req = hyper::Request::post(cfg.url.clone())
        .header(hyper::header::CONTENT_TYPE, ctype)
        .header(
            hyper::header::USER_AGENT,
            concat!("outrigger-agent/", env!("CARGO_PKG_VERSION")),
        );
    if let Kind::Loki {
        tenant: Some(t), ..
    } = &cfg.kind
    {
        req = req.header("X-Scope-OrgID", t.as_str());
    }
    let Ok(req) = req.body(Full::new(body)) else {
        return Outcome::Rejected(0, "cannot build request".into());
    };
    let resp = match tokio::time::timeout(cfg.request_timeout, client.request(req)).await {
        Err(_) => return Outcome::Retry("timeout", None),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request failed");
            return Outcome::Retry(if is_tls_error(&e) { "tls" } else { "network" }, None);
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(parse_retry_after);
    let body = match tokio::time::timeout(cfg.request_timeout, resp.into_body().collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return Outcome::Retry("network", None),
        Err(_) => return Outcome::Retry("timeout", None),
    };
    classify(&cfg.kind, status, &body, retry_after)
}

/// Whether a failed request failed in the TLS handshake (untrusted or expired certificate,
/// wrong name, protocol mismatch), so operators can tell it from an unreachable sink.
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        // hyper-rustls wraps tokio-rustls' io::Error (which wraps the rustls::Error) in another
        // io::Error, and io::Error::source skips the error it wraps: descend with get_ref.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

fn classify(kind: &Kind, status: u16, body: &[u8], retry_after: Option<Duration>) -> Outcome {
    let text = || String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    match (kind, status) {
        // Loki's block_ingestion status: 2xx, but nothing was stored.
        (Kind::Loki { .. }, 260) => Outcome::Rejected(0, "ingestion blocked (260)".into()),
        (Kind::Otlp, 200..=299) => {
            match crate::proto::otlp::collector::logs::v1::ExportLogsServiceResponse::decode(body) {
                Ok(r) => match r.partial_success {
                    Some(p) if p.rejected_log_records > 0 => {
                        Outcome::Rejected(p.rejected_log_records as u64, p.error_message)
                    }
                    _ => Outcome::Delivered,
                },
                Err(_) => Outcome::Delivered,
            }
        }
        (_, 200..=299) => Outcome::Delivered,
        (_, 429) => Outcome::Retry("http_429", retry_after),
        (_, 408) => Outcome::Retry("timeout", retry_after),
        (Kind::Otlp, 502..=504) | (Kind::Loki { .. }, 500..=599) => {
            Outcome::Retry("http_5xx", retry_after)
        }
        _ => Outcome::Rejected(0, format!("HTTP {status}: {}", text())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{equal_jitter, is_tls_error};

    #[test]
    fn equal_jitter_stays_in_the_upper_half() {
        let b = Duration::from_millis(200);
        for _ in 0..1000 {
            let w = equal_jitter(b);
            assert!(w >= b / 2 && w <= b, "{w:?}");
        }
        assert!(equal_jitter(Duration::ZERO) <= Duration::from_millis(1));
    }

    #[test]
    fn tls_errors_are_told_from_network_errors() {
        // The shape hyper-rustls produces: io::Error(Other, io::Error(InvalidData, rustls)).
        let handshake = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls_error(&std::io::Error::other(handshake)));
        assert!(!is_tls_error(&std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        )));
        assert!(!is_tls_error(&std::io::Error::other("reset by peer")));
    }
}
