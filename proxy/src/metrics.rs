//! Golden metrics (`outrigger_proxy_*`), registered with `prometheus-client` and encoded for the
//! admin `/metrics` endpoint. Label sets are small and fixed: no paths, no hosts, no pod names.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use outrigger_daemon::metrics::registered;

use crate::drain;

/// Request methods, normalised so the label set stays bounded.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms, missing_docs)]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    PATCH,
    OPTIONS,
    TRACE,
    CONNECT,
    Other,
}

impl Method {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GET => "GET",
            Self::HEAD => "HEAD",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::DELETE => "DELETE",
            Self::PATCH => "PATCH",
            Self::OPTIONS => "OPTIONS",
            Self::TRACE => "TRACE",
            Self::CONNECT => "CONNECT",
            Self::Other => "other",
        }
    }
}

impl EncodeLabelValue for Method {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

impl From<&http::Method> for Method {
    fn from(m: &http::Method) -> Self {
        match *m {
            http::Method::GET => Self::GET,
            http::Method::HEAD => Self::HEAD,
            http::Method::POST => Self::POST,
            http::Method::PUT => Self::PUT,
            http::Method::DELETE => Self::DELETE,
            http::Method::PATCH => Self::PATCH,
            http::Method::OPTIONS => Self::OPTIONS,
            http::Method::TRACE => Self::TRACE,
            http::Method::CONNECT => Self::CONNECT,
            _ => Self::Other,
        }
    }
}

/// `{method,status_code}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Normalised method.
    pub method: Method,
    /// Response status code.
    pub status_code: u16,
}

/// Inbound connection protocol.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x
    Http1,
    /// HTTP/2
    H2,
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Http1 => "http1",
            Self::H2 => "h2",
        })
    }
}

/// `{protocol,tls}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// Protocol spoken on the connection.
    pub protocol: Protocol,
    /// Whether TLS terminates here.
    pub tls: bool,
}

/// `{reason}` and `{result}` (`success` or `error` for certificate reloads; `accepted`,
/// `forbidden` or `disabled` for drain requests), the same sets as the other daemons'.
pub use outrigger_daemon::metrics::{ReasonLabels, ResultLabels};

/// Seconds buckets from 0.5 ms to 30 s: small and fixed, with resolution where a sidecar's
/// added latency lives.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// All proxy metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `outrigger_proxy_requests_total`
    pub requests: Family<RequestLabels, Counter>,
    /// `outrigger_proxy_request_duration_seconds`
    pub request_duration: Histogram,
    /// `outrigger_proxy_response_headers_duration_seconds`
    pub response_headers_duration: Histogram,
    /// `outrigger_proxy_requests_in_flight`
    pub in_flight: Gauge,
    /// `outrigger_proxy_open_connections`
    pub open_connections: Family<ConnLabels, Gauge>,
    /// `outrigger_proxy_connections_total`
    pub connections: Family<ConnLabels, Counter>,
    /// `outrigger_proxy_parked_connections`
    pub parked_connections: Gauge,
    /// `outrigger_proxy_parks_total`
    pub parks: Counter,
    /// `outrigger_proxy_retries_total`
    pub retries: Family<ReasonLabels, Counter>,
    /// `outrigger_proxy_retries_skipped_total`
    pub retries_skipped: Family<ReasonLabels, Counter>,
    /// `outrigger_proxy_tls_handshake_errors_total`
    pub tls_handshake_errors: Family<ReasonLabels, Counter>,
    /// `outrigger_proxy_tls_cert_reloads_total`
    pub tls_reloads: Family<ResultLabels, Counter>,
    /// `outrigger_proxy_request_bytes_total`
    pub request_bytes: Counter,
    /// `outrigger_proxy_response_bytes_total`
    pub response_bytes: Counter,
    /// `outrigger_proxy_draining`, set from `drain` when encoding.
    draining: Gauge,
    /// `outrigger_proxy_draining_connections`
    draining_connections: Gauge,
    /// `outrigger_proxy_local_responses_total` (responses the proxy generated itself)
    pub local_responses: Family<ReasonLabels, Counter>,
    /// `outrigger_proxy_drain_requests_total` (admin `GET /drain`, by result)
    pub drain_requests: Family<ResultLabels, Counter>,
    /// Open connections of any kind, for `draining_connections`.
    open_total: AtomicI64,
    /// The drain phase the two drain gauges show.
    drain: drain::State,
    /// `requests` counters of `200` answers by method, looked up in the family once: most
    /// answers are 200, and the family's lookup (a lock and a hash of the labels) was the
    /// dearest part of recording a request.
    ok_requests: [OnceLock<Counter>; METHODS],
}

/// Number of [`Method`] variants.
const METHODS: usize = Method::Other as usize + 1;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every family; the drain gauges stay at 0.
    pub fn new() -> Self {
        Self::with_drain(drain::State::default())
    }

    /// Register every family; the drain gauges show `drain`'s phase.
    pub fn with_drain(drain: drain::State) -> Self {
        // A root without a prefix: the gateway registers its `outrigger_gateway_*` families
        // beside these (see [`Metrics::gateway_registry`]).
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("outrigger_proxy");
        let requests = registered(
            r,
            "requests",
            "Requests answered, by normalised method and status code",
            Family::default(),
        );
        let request_duration = registered(
            r,
            "request_duration_seconds",
            "Time from request received to end of response body",
            histogram(),
        );
        let response_headers_duration = registered(
            r,
            "response_headers_duration_seconds",
            "Time from request received to response headers sent",
            histogram(),
        );
        let in_flight = registered(
            r,
            "requests_in_flight",
            "Requests received whose response has not completed",
            Gauge::default(),
        );
        let open_connections = registered(
            r,
            "open_connections",
            "Open inbound client connections",
            Family::default(),
        );
        let parked_connections = registered(
            r,
            "parked_connections",
            "HTTP/1 keep-alive connections waiting for their next request (they hold no HTTP buffers)",
            Gauge::default(),
        );
        let parks = registered(
            r,
            "parks",
            "Times an HTTP/1 keep-alive connection began waiting for its next request",
            Counter::default(),
        );
        let connections = registered(
            r,
            "connections",
            "Inbound client connections accepted (after protocol detection)",
            Family::default(),
        );
        let retries = registered(
            r,
            "retries",
            "Retries sent to the app, by cause",
            Family::default(),
        );
        let retries_skipped = registered(
            r,
            "retries_skipped",
            "Retryable failures that were not retried, by reason",
            Family::default(),
        );
        let tls_handshake_errors = registered(
            r,
            "tls_handshake_errors",
            "Failed inbound TLS handshakes, by reason",
            Family::default(),
        );
        let tls_reloads = registered(
            r,
            "tls_cert_reloads",
            "Certificate/key reloads after a file change, by result",
            Family::default(),
        );
        let request_bytes = registered(
            r,
            "request_bytes",
            "Request body bytes received from clients",
            Counter::default(),
        );
        let response_bytes = registered(
            r,
            "response_bytes",
            "Response body bytes sent to clients",
            Counter::default(),
        );
        let draining = registered(
            r,
            "draining",
            "1 while the proxy drains after SIGTERM, else 0",
            Gauge::default(),
        );
        let draining_connections = registered(
            r,
            "draining_connections",
            "Connections still open while draining",
            Gauge::default(),
        );
        let local_responses = registered(
            r,
            "local_responses",
            "Responses generated by the proxy instead of the app, by reason",
            Family::default(),
        );
        let drain_requests = registered(
            r,
            "drain_requests",
            "Admin GET /drain requests, by result: accepted, forbidden (missing or wrong token), \
             disabled (no token configured)",
            Family::default(),
        );
        outrigger_daemon::metrics::register_build_info(r, env!("CARGO_PKG_VERSION"));
        Self {
            registry,
            requests,
            request_duration,
            response_headers_duration,
            in_flight,
            open_connections,
            connections,
            parked_connections,
            parks,
            retries,
            retries_skipped,
            tls_handshake_errors,
            tls_reloads,
            request_bytes,
            response_bytes,
            draining,
            draining_connections,
            local_responses,
            drain_requests,
            open_total: AtomicI64::new(0),
            drain,
            ok_requests: [const { OnceLock::new() }; METHODS],
        }
    }

    /// Count an answered request.
    pub fn count_request(&self, method: Method, status_code: u16) {
        let labels = RequestLabels {
            method,
            status_code,
        };
        if status_code == 200 {
            self.ok_requests[method as usize]
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc();
        } else {
            self.requests.get_or_create(&labels).inc();
        }
    }

    /// A connection was accepted and classified.
    pub fn conn_opened(&self, labels: &ConnLabels) {
        self.connections.get_or_create(labels).inc();
        self.open_connections.get_or_create(labels).inc();
        self.open_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn conn_closed(&self, labels: &ConnLabels) {
        self.open_connections.get_or_create(labels).dec();
        self.open_total.fetch_sub(1, Ordering::Relaxed);
    }

    /// Count a retry with its reason.
    pub fn retry(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Count a skipped retry with its reason.
    pub fn retry_skipped(&self, reason: &'static str) {
        self.retries_skipped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The registry for the gateway's families (prefix `outrigger_gateway`), before the metrics
    /// are shared.
    pub fn gateway_registry(&mut self) -> &mut Registry {
        self.registry.sub_registry_with_prefix("outrigger_gateway")
    }

    /// OpenMetrics text exposition, which Prometheus asks for and scrapes natively.
    pub fn encode(&self) -> String {
        let draining = self.drain.is_draining();
        self.draining.set(i64::from(draining));
        self.draining_connections.set(if draining {
            self.open_total.load(Ordering::Relaxed)
        } else {
            0
        });
        outrigger_daemon::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                method: Method::from(&http::Method::from_bytes(b"PURGE").unwrap()),
                status_code: 200,
            })
            .inc();
        m.conn_opened(&ConnLabels {
            protocol: Protocol::H2,
            tls: true,
        });
        m.retry("connect_error");
        let text = m.encode();
        for needle in [
            "outrigger_proxy_requests_total{method=\"other\",status_code=\"200\"} 1",
            "outrigger_proxy_open_connections{protocol=\"h2\",tls=\"true\"} 1",
            "outrigger_proxy_connections_total{protocol=\"h2\",tls=\"true\"} 1",
            "outrigger_proxy_retries_total{reason=\"connect_error\"} 1",
            "outrigger_proxy_build_info{version=\"",
            "# TYPE outrigger_proxy_request_duration_seconds histogram",
            "# TYPE outrigger_proxy_response_headers_duration_seconds histogram",
            "outrigger_proxy_requests_in_flight 0",
            "outrigger_proxy_draining 0",
            "outrigger_proxy_draining_connections 0",
            "outrigger_proxy_request_bytes_total 0",
            "outrigger_proxy_response_bytes_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn counted_requests_share_the_family_series() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.count_request(Method::GET, 200);
        }
        m.count_request(Method::GET, 404);
        // The series the family already holds is the one the cached counter counts into.
        m.requests
            .get_or_create(&RequestLabels {
                method: Method::GET,
                status_code: 200,
            })
            .inc();
        let text = m.encode();
        for needle in [
            "outrigger_proxy_requests_total{method=\"GET\",status_code=\"200\"} 4",
            "outrigger_proxy_requests_total{method=\"GET\",status_code=\"404\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("method=\"POST\""), "{text}");
    }
}
