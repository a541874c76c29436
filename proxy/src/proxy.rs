//! The request path: one inbound request in, one app request (plus bounded retries) out.
//!
//! Steps: limits (header count, body cap) → upgrade pass-through or normal forwarding → header
//! rewrite (hop-by-hop, X-Forwarded-*, trace context) → body preparation (replay buffer only when
//! a retry is possible) → attempts with budget, backoff and the whole-request deadline → response
//! rewrite (hop-by-hop, `Connection: close` while draining) → completion telemetry on body end.

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::body::{self, BodyError, ReqBody, RespBody};
use crate::config::Config;
use crate::deadline::{ConnTimer, Deadline};
use crate::drain::{Phase, Watcher};
use crate::headers;
use crate::io::ConnTrack;
use crate::metrics::{Method, Metrics, Protocol, ReasonLabels};
use crate::retry::{self, HeaderCopy, Policy};
use crate::telemetry::{Completion, LogFields, Tracing};
use crate::upstream::{Upstream, UpstreamError};

/// Idle app connections kept for reuse; beyond this the oldest is closed.
const MAX_IDLE_APP_CONNECTIONS: usize = 1024;

/// Header slots reserved beyond a request's own (see `forward`).
const FORWARD_HEADROOM: usize = 12;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Golden metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled keep-alive connections to the app.
    pub upstream: Arc<Upstream>,
    /// Retry budget and backoff.
    pub retry: Policy,
    /// OTLP tracing when configured.
    pub tracing: Option<Arc<Tracing>>,
    /// Set at SIGTERM.
    pub draining: AtomicBool,
}

impl Shared {
    /// Build the app connection pool and shared state (inside the runtime).
    pub fn new(config: Config, metrics: Arc<Metrics>, tracing: Option<Arc<Tracing>>) -> Self {
        let upstream = Upstream::new(
            config.app,
            config.connect_timeout,
            config.idle_timeout,
            MAX_IDLE_APP_CONNECTIONS,
        );
        Self {
            retry: Policy::new(&config.retry),
            config,
            metrics,
            upstream,
            tracing,
            draining: AtomicBool::new(false),
        }
    }

    /// Whether SIGTERM was received.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Per-connection facts the request path needs.
#[derive(Debug)]
pub struct ConnInfo {
    /// Client address.
    pub client: SocketAddr,
    /// The client address as an `X-Forwarded-For` element (formatted once per connection).
    pub forwarded_for: HeaderValue,
    /// TLS terminated here.
    pub tls: bool,
    /// Protocol of the connection.
    pub protocol: Protocol,
    /// Activity tracker.
    pub track: Arc<ConnTrack>,
    /// The connection's drain watcher; upgraded tunnels take a clone so the drain waits for them.
    pub drain: Watcher,
    /// The request timer its requests share (HTTP/1, whose requests come one at a time); HTTP/2
    /// streams time themselves.
    pub request_timer: Option<ConnTimer>,
}

/// The hyper service for one inbound connection (built per hyper connection). Its future is a
/// plain `async` block, not a boxed trait object: hyper keeps an HTTP/1 connection's in-flight
/// future in one slot it allocates per connection, so a request costs no allocation for it.
pub fn service(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<RespBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    // `handle` is the future itself (no wrapping block): each wrapper is another copy of the
    // request on its way in.
    hyper::service::service_fn(move |req| handle(shared.clone(), conn.clone(), req))
}

/// What forwarding reports besides the response (for telemetry). Filled in through a reference
/// rather than returned beside the response: every level a response is returned through in a
/// wrapper copies it again.
#[derive(Default)]
struct Forwarded {
    upstream: Option<Duration>,
    retries: u32,
}

fn local(status: StatusCode, reason: &'static str, metrics: &Metrics) -> Response<RespBody> {
    metrics
        .local_responses
        .get_or_create(&ReasonLabels { reason })
        .inc();
    let body = match status {
        StatusCode::BAD_GATEWAY => "app unavailable\n",
        StatusCode::GATEWAY_TIMEOUT => "app timed out\n",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large\n",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request headers too large\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        _ => "",
    };
    let mut response = Response::new(RespBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<RespBody>, Infallible>> {
    // A function returning its future, not an `async fn`: an async fn keeps each argument twice
    // in its future (as passed, and as moved into the body), and the request is 264 bytes.
    async move {
        let start = Instant::now();
        let metrics = shared.metrics.clone();
        metrics.in_flight.inc();
        conn.track.begin();
        // If the client cancels before response headers (HTTP/2 RST_STREAM, disconnect), this
        // future is dropped: the guard undoes the in-flight accounting that the completion would
        // have done.
        let mut guard = InFlightGuard {
            metrics: &metrics,
            track: &conn.track,
            armed: true,
        };
        let method = Method::from(req.method());
        let version = req.version();
        // Only a bodyless HTTP/1.1 keep-alive exchange leaves nothing unread on the socket that
        // hyper would otherwise have had to drain, so only then may the idle connection be parked.
        let mut reusable = conn.protocol == Protocol::Http1
            && version == Version::HTTP_11
            && http_body::Body::is_end_stream(req.body())
            && !headers::connection_has(req.headers(), "close");
        let protocol = match version {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };

        let bytes_in = shared
            .config
            .access_log
            .then(|| Arc::new(AtomicU64::new(0)));
        let mut log = bytes_in.as_ref().map(|b| {
            Box::new(LogFields {
                method: req.method().clone(),
                path: req.uri().path().to_owned(),
                protocol,
                client: conn.client,
                trace_id: crate::telemetry::trace_id_from_headers(req.headers()),
                bytes_in: b.clone(),
            })
        });

        let mut span = None;
        let mut fwd = Forwarded::default();
        let mut response = forward(&shared, &conn, req, bytes_in, &mut span, &mut fwd, start).await;
        if let (Some(cx), Some(log)) = (&span, log.as_mut()) {
            use opentelemetry::trace::TraceContextExt as _;
            log.trace_id = Some(cx.span().span_context().trace_id().to_string());
        }

        let status = response.status().as_u16();
        // The app may speak HTTP/1.0; the client gets the protocol it used.
        *response.version_mut() = version;
        reusable &= response.status() != StatusCode::SWITCHING_PROTOCOLS;
        if shared.is_draining()
            && conn.protocol == Protocol::Http1
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            reusable = false;
            // Tell HTTP/1 clients to reconnect elsewhere; hyper closes after this response.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        metrics
            .response_headers_duration
            .observe(start.elapsed().as_secs_f64());
        guard.armed = false;
        drop(guard);
        let done = Completion {
            metrics,
            track: conn.track.clone(),
            start,
            method,
            status,
            upstream: fwd.upstream,
            retries: fwd.retries,
            bytes_out: 0,
            error: false,
            reusable,
            log,
            span,
        };
        response.body_mut().set_completion(done);
        Ok(response)
    }
}

struct InFlightGuard<'a> {
    metrics: &'a Metrics,
    track: &'a ConnTrack,
    armed: bool,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.metrics.in_flight.dec();
            self.track.end(false, Instant::now());
        }
    }
}

/// Origin-form target for the app (`/path?query`); the Host header carries the authority.
fn upstream_uri(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from(PathAndQuery::from_static("/")),
    }
}

#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn forward(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    bytes_in: Option<Arc<AtomicU64>>,
    span: &mut Option<opentelemetry::Context>,
    fwd: &mut Forwarded,
    start: Instant,
) -> impl Future<Output = Response<RespBody>> {
    // Not an `async fn`, like `handle`.
    async move {
        let cfg = &shared.config;
        let metrics = &shared.metrics;

        // HTTP/1 header limits are enforced by hyper (431); HTTP/2 header *count* is checked here.
        if req.headers().len() > cfg.max_headers {
            return local(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                metrics,
            );
        }
        if *req.method() == http::Method::CONNECT {
            return local(StatusCode::METHOD_NOT_ALLOWED, "connect_refused", metrics);
        }
        if let Some(limit) = cfg.max_body_bytes {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return local(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", metrics);
            }
        }

        let upgrade = conn.protocol == Protocol::Http1 && headers::wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        // A block, so the client's request parts are gone before the first await instead of
        // taking room in the request's future.
        let (method, uri, headers, incoming) = {
            let (mut parts, incoming) = req.into_parts();
            let mut headers = std::mem::take(&mut parts.headers);
            if !headers.contains_key(header::HOST) {
                // HTTP/2 carries the host in :authority; HTTP/1.1 apps need a Host header.
                if let Some(a) = parts.uri.authority()
                    && let Ok(v) = HeaderValue::from_str(a.as_str())
                {
                    headers.insert(header::HOST, v);
                }
            }
            let original = if shared.tracing.is_some() {
                Some(headers.clone())
            } else {
                None
            };
            headers::strip_hop_by_hop(&mut headers, upgrade, true);
            // Room for the forwarding headers and for the app's response, which hyper parses into
            // the map it sent: growing the map (sized by hyper to the request's headers) once,
            // ahead, is cheaper than growing it as headers are added.
            headers.reserve(FORWARD_HEADROOM);
            headers::add_forwarded(&mut headers, &conn.forwarded_for, conn.tls);
            if let (Some(t), Some(orig)) = (&shared.tracing, &original) {
                let proto = if conn.protocol == Protocol::H2 {
                    "2"
                } else {
                    "1.1"
                };
                *span = Some(t.start(&parts.method, parts.uri.path(), orig, &mut headers, proto));
            }
            let uri = upstream_uri(&parts.uri);
            (parts.method, uri, headers, incoming)
        };

        let idempotent = retry::is_idempotent(&method, &headers);
        let retries_enabled = shared.retry.attempts > 0 && !upgrade;
        let replay_cap = (idempotent && retries_enabled).then_some(shared.retry.max_body);
        let prepared = if http_body::Body::is_end_stream(&incoming) {
            Ok((ReqBody::empty(), true))
        } else {
            // Boxed: only requests with a body pay for the reading state; every request's future
            // (allocated and moved per request) stays small.
            Box::pin(body::prepare(
                incoming,
                replay_cap,
                cfg.max_body_bytes,
                metrics.request_bytes.clone(),
                bytes_in,
            ))
            .await
        };
        let (first_body, replayable) = match prepared {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return local(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", metrics);
            }
            Err(BodyError::Read(_)) => {
                return local(StatusCode::BAD_REQUEST, "client_body_error", metrics);
            }
        };
        shared.retry.deposit();

        let build = |body: ReqBody, headers: http::HeaderMap| {
            let mut r = Request::new(body);
            *r.method_mut() = method.clone();
            *r.uri_mut() = uri.clone();
            *r.version_mut() = Version::HTTP_11;
            *r.headers_mut() = headers;
            r
        };

        let deadline = cfg.request_timeout.map(|t| start + t);
        // Upstream time is only reported in the access log; clock reads are not free on VMs.
        let time_upstream = cfg.access_log;
        // Held here and borrowed by the loop: moved into it, each would have a second slot.
        let mut body = Some(first_body);
        let mut headers = Some(headers);
        let mut headers_copy: Option<HeaderCopy> = None;
        // The attempt loop is pinned where it is built and the deadline holds a reference to it:
        // moved into the `Deadline` instead, it would be copied twice more per request.
        let attempts = std::pin::pin!(async {
            let mut retries = 0u32;
            loop {
                let this_body = body.take().unwrap_or_else(ReqBody::empty);
                // Keep a copy only when another attempt is possible (never for a request that
                // is not idempotent: it is not retried whatever the failure).
                let can_retry_more =
                    idempotent && retries_enabled && retries < shared.retry.attempts;
                let next_body = if can_retry_more {
                    this_body.replay()
                } else {
                    None
                };
                // The map itself goes to the app and a copy stays for the next attempt.
                let this_headers = match (headers.take(), headers_copy.take()) {
                    (Some(map), _) => map,
                    (None, copy) => copy
                        .map(|c| c.into_map(FORWARD_HEADROOM))
                        .unwrap_or_default(),
                };
                if can_retry_more && next_body.is_some() {
                    headers_copy = Some(HeaderCopy::of(&this_headers));
                }
                let sent = time_upstream.then(Instant::now);
                let result = shared.upstream.send(build(this_body, this_headers)).await;
                let reason = match &result {
                    Ok((resp, _)) => match retry::status_reason(resp.status()) {
                        Some(r) => r,
                        None => return (result, retries, sent),
                    },
                    Err(e) if e.is_connect() => "connect_error",
                    Err(e) if body_too_large(e) => return (result, retries, sent),
                    Err(_) => "connection_error",
                };
                if !retries_enabled || retries >= shared.retry.attempts {
                    return (result, retries, sent);
                }
                if !idempotent {
                    metrics.retry_skipped(retry::skip::NON_IDEMPOTENT);
                    return (result, retries, sent);
                }
                if !replayable || next_body.is_none() {
                    metrics.retry_skipped(retry::skip::BODY_TOO_LARGE);
                    return (result, retries, sent);
                }
                if !shared.retry.withdraw() {
                    metrics.retry_skipped(retry::skip::BUDGET_EXHAUSTED);
                    return (result, retries, sent);
                }
                metrics.retry(reason);
                if let Ok((_, lease)) = result {
                    // The unread error body leaves the connection's state unknown.
                    lease.discard();
                }
                Box::pin(tokio::time::sleep(shared.retry.backoff(retries))).await;
                retries += 1;
                body = next_body;
            }
        });
        let Some((result, retries, sent)) =
            Deadline::new(attempts, deadline, conn.request_timer.as_ref()).await
        else {
            return local(StatusCode::GATEWAY_TIMEOUT, "request_timeout", metrics);
        };

        fwd.retries = retries;
        match result {
            Ok((mut resp, lease)) => {
                fwd.upstream = sent.map(|s| s.elapsed());
                let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
                let lease = if switching {
                    // The connection now belongs to the tunnel (or is unusable without one).
                    lease.discard();
                    None
                } else {
                    Some(lease)
                };
                if switching && let Some(client_upgrade) = client_upgrade {
                    conn.track.mark_upgraded();
                    let app_upgrade = hyper::upgrade::on(&mut resp);
                    spawn_tunnel(conn.drain.clone(), client_upgrade, app_upgrade);
                }
                headers::strip_hop_by_hop(resp.headers_mut(), switching && upgrade, false);
                resp.map(|app_body| RespBody::stream(app_body, lease))
            }
            Err(e) if body_too_large(&e) => {
                local(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", metrics)
            }
            Err(e) => {
                tracing::debug!(error = %e, source = ?e.source(), "app request failed");
                if e.is_timeout() {
                    local(StatusCode::GATEWAY_TIMEOUT, "connect_timeout", metrics)
                } else {
                    local(StatusCode::BAD_GATEWAY, "app_error", metrics)
                }
            }
        }
    }
}

fn body_too_large(e: &UpstreamError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = src {
        if matches!(s.downcast_ref::<BodyError>(), Some(BodyError::TooLarge)) {
            return true;
        }
        src = s.source();
    }
    false
}

/// Splice an upgraded client connection to the upgraded app connection until either side closes
/// or the drain is forced.
pub fn spawn_tunnel(
    mut drain: Watcher,
    client: hyper::upgrade::OnUpgrade,
    app: hyper::upgrade::OnUpgrade,
) {
    tokio::spawn(async move {
        let (client, app) = match tokio::try_join!(client, app) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut app = TokioIo::new(app);
        tokio::select! {
            res = tokio::io::copy_bidirectional(&mut client, &mut app) => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "tunnel closed with error");
                }
            }
            _ = drain.reached(Phase::Forced) => {}
        }
    });
}
