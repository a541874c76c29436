//! The gateway's routing table: what the controller builds from the Gateway API objects and the
//! data plane serves. Plain data with no Kubernetes types, so that the data plane, its tests, the
//! static `--routes-file` mode and the benchmark need no API server.
//!
//! The controller does all of the Gateway API's semantics here, once per change, so the request
//! path only walks lists in order:
//! - listeners and routes that are not accepted (wrong class, not allowed, bad references) are
//!   left out; a backendRef that is not resolvable stays in as [`Backend::Invalid`] so its share
//!   of the weight answers 500, as the spec asks;
//! - each listener's [`VirtualHost`]s are the intersection of the listener's hostname with its
//!   attached routes' hostnames, most specific first (exact, then the longest wildcard suffix,
//!   then the catch-all);
//! - each virtual host's [`Rule`]s are one entry per HTTPRoute match (a rule with three matches
//!   gives three entries), already sorted by the spec's precedence (exact path, longest prefix,
//!   method, most headers, most query params, oldest route, route namespace/name, rule order), so
//!   the first entry that matches wins.
//!
//! Endpoints are keyed by [`BackendKey`] and kept apart from the routes, so that an
//! EndpointSlice change replaces one list and the balancer's per-endpoint state (latency EWMA,
//! in-flight count, ejection) survives it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything the data plane serves. Replaced whole (behind an `Arc`) on every change.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// One entry per port the gateway binds, sorted by port.
    pub ports: Vec<Port>,
    /// Ready endpoints of every backend some rule points at.
    pub endpoints: BTreeMap<BackendKey, Vec<Endpoint>>,
}

/// One bound port: the listeners of one Gateway on one listener port.
#[derive(Debug, Clone)]
pub struct Port {
    /// TCP port, bound on the gateway's `--bind-address`: the internal port the Gateway's
    /// Service targets (the listener port itself with `--routes-file`).
    pub port: u16,
    /// The Gateway listener port clients connect to (redirects without a port keep it).
    pub listener_port: u16,
    /// Plain HTTP or TLS-terminated HTTPS.
    pub protocol: Protocol,
    /// Listeners on this port, most specific hostname first (the first whose hostname matches
    /// the request's Host, or SNI for HTTPS, serves it).
    pub listeners: Vec<Listener>,
}

/// Listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `HTTP`.
    Http,
    /// `HTTPS` with TLS mode `Terminate`.
    Https,
}

/// One Gateway listener that is Programmed.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `namespace/gateway/listener`: logs and metric labels.
    pub name: Arc<str>,
    /// The listener's hostname; `None` matches any host.
    pub hostname: Option<Hostname>,
    /// HTTPS only: the certificates from the listener's `certificateRefs`, first one preferred.
    pub certificates: Vec<Arc<rustls::sign::CertifiedKey>>,
    /// Routes attached to the listener, grouped by hostname, most specific first.
    pub virtual_hosts: Vec<VirtualHost>,
}

/// A hostname as Gateway API writes it (lower case, no port).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hostname {
    /// `foo.example.com`.
    Exact(Arc<str>),
    /// `*.example.com`, kept as the suffix `.example.com`: matches one or more labels before it.
    Wildcard(Arc<str>),
}

/// The rules that serve one hostname (or every hostname) of a listener.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// `None`: the catch-all for hosts no other virtual host of the listener names.
    pub hostname: Option<Hostname>,
    /// In precedence order: the first rule whose match holds serves the request; none gives 404.
    pub rules: Vec<Rule>,
}

/// One HTTPRoute match and what to do with the requests it selects.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `namespace/name` of the HTTPRoute: access logs and metric labels.
    pub route: Arc<str>,
    /// The match (an HTTPRoute rule without matches has the default one: prefix `/`).
    pub matches: RouteMatch,
    /// Filters in the order the route lists them.
    pub filters: Vec<Filter>,
    /// Weighted backends; empty (or all weights 0) answers 500 unless a filter (a redirect)
    /// answers first.
    pub backends: Vec<WeightedBackend>,
    /// HTTPRoute rule timeouts.
    pub timeouts: Timeouts,
}

/// An HTTPRoute match.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Path match.
    pub path: PathMatch,
    /// All must hold (header names compared case-insensitively).
    pub headers: Vec<HeaderMatch>,
    /// All must hold (parameter names compared exactly).
    pub query: Vec<QueryMatch>,
    /// When set, the request method must equal it.
    pub method: Option<http::Method>,
}

/// Path match types.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path equals the value.
    Exact(Arc<str>),
    /// The path starts with the value at a `/` boundary (`/foo` matches `/foo` and `/foo/bar`,
    /// not `/foobar`); a trailing `/` in the value is ignored.
    Prefix(Arc<str>),
    /// The path matches the (anchored) expression.
    RegularExpression(Arc<regex::Regex>),
}

/// A header or query parameter value match.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Equal.
    Exact(Arc<str>),
    /// Matches the (anchored) expression.
    RegularExpression(Arc<regex::Regex>),
}

/// A header match.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Header name.
    pub name: http::HeaderName,
    /// Value match.
    pub value: ValueMatch,
}

/// A query parameter match.
#[derive(Debug, Clone)]
pub struct QueryMatch {
    /// Parameter name (exact, case-sensitive).
    pub name: Arc<str>,
    /// Value match.
    pub value: ValueMatch,
}

/// HTTPRoute filters the gateway implements (core and the extended ones it claims).
#[derive(Debug, Clone)]
pub enum Filter {
    /// `RequestHeaderModifier`.
    RequestHeaders(HeaderModifier),
    /// `ResponseHeaderModifier`.
    ResponseHeaders(HeaderModifier),
    /// `RequestRedirect`: answers at once, no backend is called.
    Redirect(Redirect),
    /// `URLRewrite`.
    Rewrite(Rewrite),
}

/// Set, add and remove, applied in that order.
#[derive(Debug, Clone, Default)]
pub struct HeaderModifier {
    /// Replace (or add) these headers.
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Append these values.
    pub add: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Remove these headers.
    pub remove: Vec<http::HeaderName>,
}

/// `RequestRedirect`. Unset parts keep the request's own.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<Arc<str>>,
    /// Host of the `Location`.
    pub hostname: Option<Arc<str>>,
    /// Path rewrite.
    pub path: Option<PathModifier>,
    /// Port of the `Location` (omitted when it is the scheme's default).
    pub port: Option<u16>,
    /// 301 or 302.
    pub status: http::StatusCode,
}

/// `URLRewrite`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Replaces the Host header.
    pub hostname: Option<Arc<str>>,
    /// Path rewrite.
    pub path: Option<PathModifier>,
}

/// `HTTPPathModifier`.
#[derive(Debug, Clone)]
pub enum PathModifier {
    /// `ReplaceFullPath`.
    Full(Arc<str>),
    /// `ReplacePrefixMatch`: replaces the part the rule's prefix match matched.
    Prefix(Arc<str>),
}

/// HTTPRoute rule timeouts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// `request`: from the request until the response headers, retries included; 504 after.
    pub request: Option<Duration>,
    /// `backendRequest`: one attempt to one backend.
    pub backend_request: Option<Duration>,
}

/// A backendRef and its weight.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    /// Relative weight (0 = never chosen).
    pub weight: u32,
    /// Where requests go.
    pub backend: Backend,
    /// The backendRef's own filters (applied after the rule's).
    pub filters: Vec<Filter>,
}

/// A backendRef after resolution.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A Service port: requests go to the endpoints in [`Table::endpoints`] under this key (none
    /// ready answers 503).
    Service(BackendKey),
    /// Not resolvable (unknown kind, missing Service, cross-namespace without a ReferenceGrant):
    /// its share of requests answers 500.
    Invalid,
}

/// A Service port a backendRef points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendKey {
    /// Namespace of the Service.
    pub namespace: Arc<str>,
    /// Service name.
    pub name: Arc<str>,
    /// The Service port the backendRef names (endpoints carry the target port).
    pub port: u16,
}

impl std::fmt::Display for BackendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// One endpoint from an EndpointSlice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Pod address and target port.
    pub addr: SocketAddr,
    /// `conditions.ready` (absent counts as ready, as the EndpointSlice API says). Endpoints
    /// that are not ready, or are terminating, get no new request; the data plane lets their
    /// in-flight requests finish.
    pub ready: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
}
