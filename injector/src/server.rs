//! The two listeners: the HTTPS webhook (`POST /mutate`, `POST /mutate/namespace`) and the
//! plain-HTTP admin port (the shared `outrigger-daemon` server: `/live`, `/ready`, `/metrics`),
//! plus the graceful shutdown sequence.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use outrigger_daemon::admin::{self, Admin, text};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::ProxySpec;
use crate::inject::Mode;
use crate::metrics::Metrics;
use crate::review::{ReviewError, handle};

/// Slow or stuck clients get this long for the TLS handshake, headers, and body each.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of a refused body read (and dropped) before answering (see [`discard_body`]).
const DISCARD_LIMIT: usize = 4 << 20;

/// Reads and drops a body refused by its declared length, up to [`DISCARD_LIMIT`] bytes and
/// [`IO_TIMEOUT`]: the connection is closed after the answer, and closing a socket that still
/// holds unread data resets it, so a client still sending its body would get the reset instead
/// of the 413 (nginx's lingering close does the same). Nothing is kept: memory stays bounded.
async fn discard_body(mut body: Incoming) {
    let discard = async {
        let mut seen = 0usize;
        while seen < DISCARD_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, discard).await;
}

/// How reading a request body within the size limit ended.
enum BodyRead {
    Complete(Bytes),
    /// Over the limit; the rest of the body is still unread (see [`discard_body`]).
    TooLarge(Incoming),
    Failed(hyper::Error),
}

/// Reads a body of unknown length (chunked) up to `max` bytes. Past the limit it hands the body
/// back unread instead of dropping it, so the caller can discard the rest before answering 413:
/// dropping it would close a socket that still holds the client's bytes, which resets the
/// connection and the client sees the reset instead of the 413.
async fn read_body(mut body: Incoming, max: usize) -> BodyRead {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > max {
                        return BodyRead::TooLarge(body);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Err(e) => return BodyRead::Failed(e),
        }
    }
    BodyRead::Complete(buf.freeze())
}

/// Shared state of both listeners.
#[derive(Debug)]
pub struct State {
    /// What to inject.
    pub proxy: ProxySpec,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body: usize,
    /// Set on SIGTERM: `/ready` turns 503 so the Service stops routing here.
    pub draining: AtomicBool,
}

type Resp = Response<Full<Bytes>>;

async fn webhook(req: Request<Incoming>, state: Arc<State>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let resp = webhook_inner(req, &state).await;
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn webhook_inner(req: Request<Incoming>, state: &State) -> Resp {
    let mode = match req.uri().path() {
        "/mutate" => Mode::PodOptIn,
        "/mutate/namespace" => Mode::Namespace,
        _ => {
            state.metrics.reject("not_found");
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
    };
    if req.method() != Method::POST {
        state.metrics.reject("method");
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return r;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        state.metrics.reject("too_large");
        discard_body(req.into_body()).await;
        return text(StatusCode::PAYLOAD_TOO_LARGE, "AdmissionReview too large\n");
    }
    let bytes =
        match tokio::time::timeout(IO_TIMEOUT, read_body(req.into_body(), state.max_body)).await {
            Err(_) => {
                state.metrics.reject("timeout");
                return text(StatusCode::REQUEST_TIMEOUT, "body not received in time\n");
            }
            Ok(BodyRead::TooLarge(rest)) => {
                state.metrics.reject("too_large");
                discard_body(rest).await;
                return text(StatusCode::PAYLOAD_TOO_LARGE, "AdmissionReview too large\n");
            }
            Ok(BodyRead::Failed(e)) => {
                state.metrics.reject("malformed");
                return text(StatusCode::BAD_REQUEST, format!("reading body: {e}\n"));
            }
            Ok(BodyRead::Complete(b)) => b,
        };
    match handle(&bytes, mode, &state.proxy, &state.metrics) {
        Ok((json, _)) => {
            let mut r = Response::new(Full::new(Bytes::from(json)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e @ ReviewError::Malformed(_)) => {
            state.metrics.reject("malformed");
            tracing::warn!(error = %e, "rejected request");
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding response");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

impl Admin for State {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        admin::unless_draining(self.draining.load(Ordering::Relaxed))
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .max_buf_size(64 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024);
    b
}

/// Serve the webhook until `stop` flips to true, then let in-flight reviews finish for up to
/// `grace`.
pub async fn serve_webhook(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let builder = Arc::new(builder());
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    state.metrics.tls_handshake_errors.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.tls_handshake_errors.inc();
                    return;
                }
            };
            let svc = service_fn(move |req| webhook(req, state.clone()));
            let conn = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "webhook connection ended with error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight reviews still running after the shutdown timeout");
    }
}

/// Serve the admin endpoints (the shared `outrigger-daemon` server) until the task is dropped.
pub async fn serve_admin(listener: TcpListener, state: Arc<State>) {
    admin::serve(listener, state).await;
}
