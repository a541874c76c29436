//! The gateway's side of the shared request path ([`forward::Router`]): for a request on one
//! port, the listener by Host, the virtual host, the first matching rule (404 when none), the
//! rule's filters, a weighted random backend and its filters, then the endpoint attempts
//! ([`Attempts`]); `Backend::Invalid` answers 500, a backend without endpoints 503. The answer
//! gets the response filters and is counted per route and backend.

use std::sync::{Arc, PoisonError, RwLock};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use smallvec::SmallVec;
use tokio::time::Instant;

use super::balance::{Attempts, Balancer};
use super::filters;
use super::metrics::{BackendLabels, GatewayMetrics, RequestLabels};
use super::routing;
use super::served::{Resolved, Served};
use crate::body::RespBody;
use crate::conn::ConnInfo;
use crate::forward::{self, Route, Routing};
use crate::gateway::table::{Filter, HeaderModifier, Port, Table};
use crate::shared::Shared;

/// The table being served, the balancer and the gateway metrics: shared by every port.
#[derive(Debug)]
pub struct State {
    served: RwLock<Arc<Served>>,
    /// Endpoint state.
    pub balancer: Balancer,
    /// `outrigger_gateway_*`.
    pub metrics: GatewayMetrics,
}

impl State {
    /// State serving an empty table.
    pub fn new(balancer: Balancer, metrics: GatewayMetrics) -> Self {
        Self {
            served: RwLock::default(),
            balancer,
            metrics,
        }
    }

    /// The table being served, with its resolved backends.
    pub fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The table being served.
    pub fn table(&self) -> Arc<Table> {
        self.served().table.clone()
    }

    /// Serve `table` from now on (endpoints first, so no rule points at a backend the balancer
    /// does not know yet).
    pub fn install(&self, table: Arc<Table>) {
        let ejections = &self.metrics.ejections;
        self.balancer.update(&table, |backend| {
            ejections
                .get_or_create(&BackendLabels {
                    backend: backend.to_owned(),
                })
                .clone()
        });
        let served = Arc::new(Served::new(table, &self.balancer, &self.metrics));
        *self.served.write().unwrap_or_else(PoisonError::into_inner) = served;
        self.metrics.table_updates.inc();
    }
}

/// The table's entry for `port`.
pub fn find_port(table: &Table, port: u16) -> Option<&Port> {
    table
        .ports
        .binary_search_by_key(&port, |p| p.port)
        .ok()
        .map(|i| &table.ports[i])
}

/// The router of one bound port.
#[derive(Debug, Clone)]
pub struct PortRouter {
    /// The port (its table entry is looked up per request: the table changes under it).
    pub port: u16,
    /// Shared gateway state.
    pub state: Arc<State>,
}

/// What the response step needs.
#[derive(Debug)]
pub struct Routed {
    stats: Arc<Resolved>,
    response_filters: SmallVec<[HeaderModifier; 1]>,
}

impl PortRouter {
    fn count(&self, route: &Arc<str>, backend: &Arc<str>, code: u16) {
        self.state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: backend.clone(),
                code,
            })
            .inc();
    }

    /// A response made here for a routed (or unroutable) request, counted.
    fn answer(
        &self,
        shared: &Shared,
        status: StatusCode,
        reason: &'static str,
        route: &Arc<str>,
        backend: &Arc<str>,
    ) -> Response<RespBody> {
        self.count(route, backend, status.as_u16());
        forward::local(status, reason, &shared.metrics)
    }
}

/// Apply `list` to the request; a redirect ends routing with its response.
#[allow(
    clippy::too_many_arguments,
    reason = "the request's parts, edited in place"
)]
fn apply(
    list: &[Filter],
    uri: &mut Uri,
    headers: &mut HeaderMap,
    response_filters: &mut SmallVec<[HeaderModifier; 1]>,
    prefix_len: Option<usize>,
    scheme: &str,
    port: u16,
) -> Option<Response<RespBody>> {
    for f in list {
        match f {
            Filter::RequestHeaders(m) => filters::modify_headers(headers, m),
            Filter::ResponseHeaders(m) => response_filters.push(m.clone()),
            Filter::Rewrite(r) => filters::rewrite(uri, headers, r, prefix_len),
            Filter::Redirect(r) => {
                let host = routing::request_host(uri, headers);
                let location = filters::location(r, scheme, &host, port, uri, prefix_len);
                let mut resp = Response::new(RespBody::full(bytes::Bytes::new()));
                *resp.status_mut() = r.status;
                if let Ok(v) = HeaderValue::from_str(&location) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                return Some(resp);
            }
        }
    }
    None
}

impl forward::Router for PortRouter {
    type Targets<'a> = Attempts;
    type Routed = Routed;

    fn route<'a>(
        &'a self,
        shared: &'a Shared,
        conn: &ConnInfo,
        method: &Method,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> Routing<Attempts, Routed> {
        let served = self.state.served();
        let host = routing::request_host(uri, headers);
        let port = find_port(&served.table, self.port);
        // Redirects without a port keep the port the client used: the Gateway listener's,
        // not the internal one this socket is bound on.
        let listener_port = port.map_or(self.port, |p| p.listener_port);
        let rule = port
            .and_then(|p| routing::listener(p, &host))
            .and_then(|l| routing::virtual_host(l, &host))
            .and_then(|v| routing::rule(v, method, uri, headers));
        let Some(rule) = rule else {
            let none: Arc<str> = Arc::from("");
            return Err(Box::new(self.answer(
                shared,
                StatusCode::NOT_FOUND,
                "no_route",
                &none,
                &none,
            )));
        };
        let prefix_len = routing::prefix_len(&rule.matches.path);
        let scheme = if conn.tls { "https" } else { "http" };
        let mut response_filters = SmallVec::new();
        if let Some(mut redirect) = apply(
            &rule.filters,
            uri,
            headers,
            &mut response_filters,
            prefix_len,
            scheme,
            listener_port,
        ) {
            for m in &response_filters {
                filters::modify_headers(redirect.headers_mut(), m);
            }
            self.count(&rule.route, &Arc::from(""), redirect.status().as_u16());
            return Err(Box::new(redirect));
        }
        let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return Err(Box::new(self.answer(
                shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_backend",
                &rule.route,
                &Arc::from(""),
            )));
        }
        // One backend (the common case) needs no random number.
        let mut n = if rule.backends.len() == 1 {
            0
        } else {
            fastrand::u64(..total)
        };
        let chosen = rule
            .backends
            .iter()
            .find(|b| {
                let w = u64::from(b.weight);
                if n < w {
                    true
                } else {
                    n -= w;
                    false
                }
            })
            .unwrap_or(&rule.backends[0]);
        if let Some(redirect) = apply(
            &chosen.filters,
            uri,
            headers,
            &mut response_filters,
            prefix_len,
            scheme,
            listener_port,
        ) {
            self.count(&rule.route, &Arc::from(""), redirect.status().as_u16());
            return Err(Box::new(redirect));
        }
        let Some(res) = served.resolved(chosen) else {
            // Every backend of the table is resolved when it is installed.
            let none: Arc<str> = Arc::from("");
            return Err(Box::new(self.answer(
                shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "no_endpoint",
                &rule.route,
                &none,
            )));
        };
        if res.invalid {
            return Err(Box::new(self.answer(
                shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid_backend",
                &res.route,
                &res.backend,
            )));
        }
        let Some(set) = &res.set else {
            return Err(Box::new(self.answer(
                shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "no_endpoint",
                &res.route,
                &res.backend,
            )));
        };
        Ok(Route {
            timeout: rule.timeouts.request,
            targets: Attempts::new(set.clone(), rule.timeouts.backend_request),
            routed: Routed {
                stats: res.clone(),
                response_filters,
            },
        })
    }

    fn respond(&self, routed: Routed, response: &mut Response<RespBody>, start: Instant) {
        for m in &routed.response_filters {
            filters::modify_headers(response.headers_mut(), m);
        }
        let stats = &routed.stats;
        match response.status().as_u16() {
            200 => {
                stats.ok.inc();
            }
            code => self.count(&stats.route, &stats.backend, code),
        }
        stats.duration.observe(start.elapsed().as_secs_f64());
    }
}
