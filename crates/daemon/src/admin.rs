//! The admin listener every daemon runs on plain HTTP/1.1: `GET /live` (the process answers),
//! `GET /ready` (the daemon says whether it should get traffic) and `GET /metrics` (OpenMetrics
//! when asked for, classic Prometheus text otherwise). A daemon supplies only [`Admin`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics;

/// Slow or stuck scrapers and probes get this long to send their headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a daemon tells its admin listener.
pub trait Admin: Send + Sync + 'static {
    /// `Ok(body)` when the daemon should get traffic (200), `Err(reason)` otherwise (503).
    fn ready(&self) -> impl Future<Output = Result<&'static str, &'static str>> + Send;
    /// The daemon's metrics as OpenMetrics text.
    fn metrics(&self) -> String;
    /// Paths of the daemon's own (such as the proxy's `/drain`): `None` means not found (404).
    /// Only GET and HEAD reach it; the shared paths above win.
    fn other(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> impl Future<Output = Option<Response<Full<Bytes>>>> + Send {
        let _ = (method, path, headers);
        async { None }
    }
}

/// `/ready`'s answer for a daemon that should get traffic unless it is draining: the shutdown
/// sequence turns readiness off first so endpoints stop routing here before the listener closes.
pub fn unless_draining(draining: bool) -> Result<&'static str, &'static str> {
    if draining {
        Err("draining\n")
    } else {
        Ok("ready\n")
    }
}

/// A plain-text response, as every admin path answers.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Answers one admin request.
pub async fn route<A: Admin, B>(admin: &A, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "ok\n"),
        "/ready" => match admin.ready().await {
            Ok(body) => text(StatusCode::OK, body),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason),
        },
        "/metrics" => {
            let om = admin.metrics();
            let (body, content_type) = if metrics::wants_openmetrics(req.headers()) {
                (om, metrics::OPENMETRICS)
            } else {
                (metrics::classic(&om), metrics::CLASSIC)
            };
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            );
            r
        }
        path => match admin.other(req.method(), path, req.headers()).await {
            Some(r) => r,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// Serves the admin endpoints until the task is dropped.
pub async fn serve<A: Admin>(listener: TcpListener, admin: Arc<A>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&*admin, &req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
