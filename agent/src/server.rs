//! HTTP endpoint on `--metrics`: `GET /metrics` (agent + node metrics, Prometheus text format),
//! `/live` (process is up) and `/ready` (initial scan done, sinks running).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::node::NodeCollector;

fn respond(
    status: StatusCode,
    ctype: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, node: NodeCollector) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let node = node.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let node = node.clone();
                async move {
                    let resp = if req.method() != Method::GET && req.method() != Method::HEAD {
                        respond(
                            StatusCode::METHOD_NOT_ALLOWED,
                            "text/plain",
                            "method not allowed\n",
                        )
                    } else {
                        match req.uri().path() {
                            "/metrics" => {
                                let mut out = String::with_capacity(16 * 1024);
                                metrics.render(&mut out);
                                node.render(&mut out);
                                respond(
                                    StatusCode::OK,
                                    "text/plain; version=0.0.4; charset=utf-8",
                                    out,
                                )
                            }
                            "/live" => respond(StatusCode::OK, "text/plain", "ok\n"),
                            "/ready" => {
                                if metrics.ready.load(Ordering::Relaxed) {
                                    respond(StatusCode::OK, "text/plain", "ready\n")
                                } else {
                                    respond(
                                        StatusCode::SERVICE_UNAVAILABLE,
                                        "text/plain",
                                        "starting\n",
                                    )
                                }
                            }
                            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
