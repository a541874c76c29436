//! The request path: one inbound request in, one app request (plus bounded retries) out.
//!
//! [`handle`] reads top to bottom: open the request on its connection → [`forward`] (limits →
//! header rewrite, trace context → routing by the [`Router`] (the sidecar's [`App`]: its one app;
//! the gateway: its routes and balancer) → body preparation, a replay buffer only when a retry is
//! possible → attempts through [`retry::send`] under the whole-request deadline → the app's
//! response, or an upgrade tunnel) → response rewrite (`Connection: close` while draining) → a
//! [`Completion`] attached to the response body, which reports metrics, the access log, the span
//! and the end of the request to its connection when the body ends.
//!
//! The futures here are shaped for the hot path (docs/benchmarks.md): functions return `async`
//! blocks rather than being `async fn`s (which keep every argument twice), nothing wraps
//! `handle`'s future, and the attempt loop is pinned where it is built.

use std::convert::Infallible;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use tokio::time::Instant;

use crate::body::{self, BodyError, RespBody};
use crate::config::Config;
use crate::conn::h1::OnUpgrade;
use crate::conn::{Active, ConnInfo, InBody};
use crate::deadline::Deadline;
use crate::drain::{Phase, Watcher};
use crate::headers;
use crate::metrics::{Method, Metrics, Protocol, ReasonLabels};
use crate::retry::{self, Outbound, Sent};
use crate::shared::Shared;
use crate::telemetry::{Completion, LogFields};

/// Header slots reserved beyond a request's own (see [`rewrite`]).
pub(crate) const FORWARD_HEADROOM: usize = 12;

/// The service for one inbound connection. Its future is a plain `async` block, not a boxed
/// trait object: the HTTP/1 connection awaits it in place, so a request costs no allocation for
/// it.
pub fn service<R: Router>(
    shared: Arc<Shared>,
    router: R,
    conn: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    Request<InBody>,
    Response = Response<RespBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    // `handle` is the future itself (no wrapping block): each wrapper is another copy of the
    // request on its way in.
    hyper::service::service_fn(move |req| handle(shared.clone(), router.clone(), conn.clone(), req))
}

#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn handle<R: Router>(
    shared: Arc<Shared>,
    router: R,
    conn: Arc<ConnInfo>,
    req: Request<InBody>,
) -> impl Future<Output = Result<Response<RespBody>, Infallible>> {
    // A function returning its future, not an `async fn`: an async fn keeps each argument twice
    // in its future (as passed, and as moved into the body), and the request is 264 bytes.
    async move {
        let start = Instant::now();
        let metrics = shared.metrics.clone();
        metrics.in_flight.inc();
        // If the client cancels before response headers (HTTP/2 RST_STREAM, disconnect), this
        // future is dropped: the guard undoes the in-flight accounting that the completion would
        // have done.
        let in_flight = InFlight {
            metrics: &metrics,
            active: conn.track.begin(),
        };
        let method = Method::from(req.method());
        let version = req.version();
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

        let Forwarded {
            mut response,
            span,
            retries,
            upstream,
        } = forward(&shared, &router, &conn, req, bytes_in, start).await;
        if let (Some(cx), Some(log)) = (&span, log.as_mut()) {
            use opentelemetry::trace::TraceContextExt as _;
            log.trace_id = Some(cx.span().span_context().trace_id().to_string());
        }

        let status = response.status().as_u16();
        // The app may speak HTTP/1.0; the client gets the protocol it used.
        *response.version_mut() = version;
        if shared.is_draining()
            && conn.protocol == Protocol::Http1
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            // Tell HTTP/1 clients to reconnect elsewhere; the connection closes after this response.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        metrics
            .response_headers_duration
            .observe(start.elapsed().as_secs_f64());
        let active = in_flight.responded();
        let done = Completion {
            metrics,
            active,
            start,
            method,
            status,
            upstream,
            retries,
            bytes_out: 0,
            error: false,
            log,
            span,
        };
        response.body_mut().set_completion(done);
        Ok(response)
    }
}

/// Where requests go: the sidecar's app ([`App`]) or the gateway's routes. A type parameter of
/// the request path rather than a trait object, so the sidecar's path compiles to what it was.
pub trait Router: Clone + Send + Sync + 'static {
    /// The targets of a request's attempts.
    type Targets<'a>: retry::Targets<Pick: Send + Sync> + Send + Sync + 'a;
    /// What [`Router::respond`] needs from the routing step.
    type Routed: Send;

    /// Route a request whose head is about to be forwarded, rewriting its target and headers in
    /// place; `Err` is the answer when it is not forwarded (no route, a redirect, ...), boxed so
    /// the result stays small where requests are routed.
    fn route<'a>(
        &'a self,
        shared: &'a Shared,
        conn: &ConnInfo,
        method: &http::Method,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> Routing<Self::Targets<'a>, Self::Routed>;

    /// The answer to a routed request is ready (forwarded or local): response filters, metrics.
    fn respond(&self, routed: Self::Routed, response: &mut Response<RespBody>, start: Instant);
}

/// What routing gives: a decision, or the answer when the request is not forwarded.
pub type Routing<T, R> = Result<Route<T, R>, Box<Response<RespBody>>>;

/// A routing decision.
pub struct Route<T, R> {
    /// Where the attempts go.
    pub targets: T,
    /// Overrides `--request-timeout` for this request.
    pub timeout: Option<Duration>,
    /// Handed to [`Router::respond`].
    pub routed: R,
}

/// The sidecar's router: every request goes to the app.
#[derive(Debug, Clone, Copy, Default)]
pub struct App;

impl Router for App {
    type Targets<'a> = &'a Arc<crate::upstream::Upstream>;
    type Routed = ();

    #[inline]
    fn route<'a>(
        &'a self,
        shared: &'a Shared,
        _: &ConnInfo,
        _: &http::Method,
        _: &mut Uri,
        _: &mut HeaderMap,
    ) -> Routing<Self::Targets<'a>, ()> {
        Ok(Route {
            targets: &shared.upstream,
            timeout: None,
            routed: (),
        })
    }

    #[inline]
    fn respond(&self, (): (), _: &mut Response<RespBody>, _: Instant) {}
}

/// A request between its start and its response headers.
struct InFlight<'a> {
    metrics: &'a Metrics,
    active: Active,
}

impl InFlight<'_> {
    /// The response is ready: the completion takes the request over.
    fn responded(mut self) -> Active {
        self.active.take()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Still open: the request was cancelled; dropping `active` ends it.
        if self.active.is_open() {
            self.metrics.in_flight.dec();
        }
    }
}

/// What forwarding produced: the response and what telemetry reports about it.
struct Forwarded {
    response: Response<RespBody>,
    /// The server span, when tracing is on and the request got as far as its rewrite.
    span: Option<opentelemetry::Context>,
    /// Retries made.
    retries: u32,
    /// Time until the app's response headers (measured only for the access log).
    upstream: Option<Duration>,
}

impl Forwarded {
    /// A response made here, before or without an answer from the app.
    fn local(response: Response<RespBody>, span: Option<opentelemetry::Context>) -> Self {
        Self {
            response,
            span,
            retries: 0,
            upstream: None,
        }
    }
}

#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn forward<'a, R: Router>(
    shared: &'a Arc<Shared>,
    router: &'a R,
    conn: &'a ConnInfo,
    mut req: Request<InBody>,
    bytes_in: Option<Arc<AtomicU64>>,
    start: Instant,
) -> impl Future<Output = Forwarded> + 'a {
    // Not an `async fn`, like `handle`.
    async move {
        let cfg = &shared.config;
        let metrics = &shared.metrics;
        if let Some((status, reason)) = rejected(&req, cfg) {
            return Forwarded::local(local(status, reason, metrics), None);
        }

        let upgrade = conn.protocol == Protocol::Http1 && headers::wants_upgrade(req.headers());
        let client_upgrade = if upgrade {
            OnUpgrade::take(&mut req)
        } else {
            None
        };
        let (method, mut uri, mut headers, incoming, span) = rewrite(shared, conn, req, upgrade);
        let Route {
            targets,
            timeout,
            routed,
        } = match router.route(shared, conn, &method, &mut uri, &mut headers) {
            Ok(r) => r,
            Err(response) => return Forwarded::local(*response, span),
        };

        let plan = shared.retry.plan(&method, &headers, upgrade);
        let prepared = if http_body::Body::is_end_stream(&incoming) {
            Ok((body::ReqBody::empty(), true))
        } else {
            // Boxed: only requests with a body pay for the reading state; every request's future
            // (allocated and moved per request) stays small.
            Box::pin(body::prepare(
                incoming,
                plan.replay_cap(&shared.retry),
                cfg.max_body_bytes,
                metrics.request_bytes.clone(),
                bytes_in,
            ))
            .await
        };
        let (body, replayable) = match prepared {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                let mut response = local(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", metrics);
                router.respond(routed, &mut response, start);
                return Forwarded::local(response, span);
            }
            Err(BodyError::Read(_)) => {
                let mut response = local(StatusCode::BAD_REQUEST, "client_body_error", metrics);
                router.respond(routed, &mut response, start);
                return Forwarded::local(response, span);
            }
        };
        shared.retry.deposit();

        let deadline = timeout.or(cfg.request_timeout).map(|t| start + t);
        let outbound = Outbound {
            method: &method,
            uri: &uri,
            headers,
            body: Some(body),
            replayable,
        };
        // Upstream time is only reported in the access log; clock reads are not free on VMs.
        // The attempts are pinned where they are built and the deadline holds a reference to
        // them: moved into the `Deadline` instead, they would be copied twice more per request.
        let attempts = std::pin::pin!(retry::send(
            targets,
            &shared.retry,
            metrics,
            plan,
            outbound,
            cfg.access_log,
        ));
        let Some(Sent {
            result,
            retries,
            at,
        }) = Deadline::new(attempts, deadline, conn.request_timer.as_ref()).await
        else {
            let mut response = local(StatusCode::GATEWAY_TIMEOUT, "request_timeout", metrics);
            router.respond(routed, &mut response, start);
            return Forwarded::local(response, span);
        };

        let mut upstream = None;
        let mut response = match result {
            Ok(mut resp) => {
                upstream = at.map(|s| s.elapsed());
                let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
                // After a 101 the connection belongs to the tunnel (or is closed without one).
                let app_upgrade = resp.body_mut().take_upgrade();
                if switching
                    && let (Some(client_upgrade), Some(app_upgrade)) = (client_upgrade, app_upgrade)
                {
                    spawn_tunnel(conn.drain.clone(), client_upgrade, app_upgrade);
                }
                headers::strip_hop_by_hop(resp.headers_mut(), switching && upgrade, false);
                resp.map(RespBody::stream)
            }
            Err(e) if retry::body_too_large(&e) => {
                local(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", metrics)
            }
            Err(e) if e.is_no_endpoint() => {
                local(StatusCode::SERVICE_UNAVAILABLE, "no_endpoint", metrics)
            }
            Err(e) => {
                tracing::debug!(error = %e, source = ?e.source(), "app request failed");
                if e.is_timeout() {
                    local(StatusCode::GATEWAY_TIMEOUT, "connect_timeout", metrics)
                } else {
                    local(StatusCode::BAD_GATEWAY, "app_error", metrics)
                }
            }
        };
        router.respond(routed, &mut response, start);
        Forwarded {
            response,
            span,
            retries,
            upstream,
        }
    }
}

/// The limits checked before anything is forwarded: the status and reason to answer with.
fn rejected(req: &Request<InBody>, cfg: &Config) -> Option<(StatusCode, &'static str)> {
    // HTTP/1 header limits are enforced by the codec (431); HTTP/2 header *count* is checked here.
    if req.headers().len() > cfg.max_headers {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
        ));
    }
    if *req.method() == http::Method::CONNECT {
        return Some((StatusCode::METHOD_NOT_ALLOWED, "connect_refused"));
    }
    if let Some(limit) = cfg.max_body_bytes {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Some((StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));
        }
    }
    None
}

/// The client's request taken apart for the app: method, origin-form target, headers with the
/// hop-by-hop fields gone and the forwarding and trace headers added, the body, and the server
/// span when tracing is on. Taking the request apart here (not across an await) keeps its parts
/// out of the request's future.
fn rewrite(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<InBody>,
    upgrade: bool,
) -> (
    http::Method,
    Uri,
    HeaderMap,
    InBody,
    Option<opentelemetry::Context>,
) {
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
    // Room for the forwarding headers and for the app's response, which is parsed into the
    // map it sent: growing the map (sized by the codec to the request's headers) once, ahead, is
    // cheaper than growing it as headers are added.
    headers.reserve(FORWARD_HEADROOM);
    headers::add_forwarded(&mut headers, &conn.forwarded_for, conn.tls);
    let mut span = None;
    if let (Some(t), Some(orig)) = (&shared.tracing, &original) {
        let proto = if conn.protocol == Protocol::H2 {
            "2"
        } else {
            "1.1"
        };
        span = Some(t.start(&parts.method, parts.uri.path(), orig, &mut headers, proto));
    }
    let uri = upstream_uri(&parts.uri);
    (parts.method, uri, headers, incoming, span)
}

/// Origin-form target for the app (`/path?query`); the Host header carries the authority.
/// Copied rather than shared with the client's request: an HTTP/2 request's target lives in
/// hyper's read buffer for the connection, which a shared target would keep alive until the app
/// answers.
fn upstream_uri(uri: &Uri) -> Uri {
    let pq = match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => pq,
        _ => return Uri::from(PathAndQuery::from_static("/")),
    };
    let own = Bytes::copy_from_slice(pq.as_str().as_bytes());
    // The bytes were a valid target already; the fallback only satisfies the type.
    PathAndQuery::from_maybe_shared(own).map_or_else(|_| Uri::from(pq.clone()), Uri::from)
}

/// A response made by the proxy itself, counted by `reason`.
pub fn local(status: StatusCode, reason: &'static str, metrics: &Metrics) -> Response<RespBody> {
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
        StatusCode::SERVICE_UNAVAILABLE => "no backend available\n",
        StatusCode::NOT_FOUND => "no route\n",
        StatusCode::INTERNAL_SERVER_ERROR => "invalid backend\n",
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

/// Splice an upgraded client connection to the upgraded app connection until either side closes
/// or the drain is forced.
pub fn spawn_tunnel(mut drain: Watcher, client: OnUpgrade, mut app: crate::upstream::Upgraded) {
    tokio::spawn(async move {
        let mut client = match client.wait().await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_is_origin_form_and_owns_its_bytes() {
        let target = Bytes::from(b"http://a.test/p/q?x=1".to_vec());
        let uri = Uri::from_maybe_shared(target.clone()).unwrap();
        let up = upstream_uri(&uri);
        drop(uri);
        assert!(
            target.is_unique(),
            "the target still shares the read buffer"
        );
        assert_eq!(up, "/p/q?x=1");
        assert_eq!(upstream_uri(&Uri::from_static("/")), "/");
        assert_eq!(upstream_uri(&Uri::from_static("http://a.test")), "/");
    }
}
