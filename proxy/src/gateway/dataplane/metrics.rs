//! The gateway's own families (`outrigger_gateway_*`), registered beside the sidecar's golden
//! metrics (`outrigger_proxy_*`, which the gateway exports too) on the admin port. Labels are
//! route and backend names from the table, bounded by the configuration, never by requests; they
//! are the table's shared strings, so counting a request copies no label.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use outrigger_daemon::metrics::registered;

use super::balance::Balancer;
use crate::metrics::Metrics;

/// `{route,backend,code}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `namespace/name` of the HTTPRoute; empty when no route matched.
    pub route: Arc<str>,
    /// `namespace/name:port`, `invalid`, or empty when no backend was chosen.
    pub backend: Arc<str>,
    /// Response status.
    pub code: u16,
}

/// `{route}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTPRoute.
    pub route: Arc<str>,
}

/// `{backend,state}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Backend.
    pub backend: String,
    /// `ready`, `ejected`, `not_ready`, `terminating`.
    pub state: &'static str,
}

/// `{backend}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// Backend.
    pub backend: String,
}

/// `{port}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    /// Port that failed to bind.
    pub port: u16,
}

/// The gateway's families.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// `outrigger_gateway_requests_total`
    pub requests: Family<RequestLabels, Counter>,
    /// `outrigger_gateway_request_duration_seconds` (until response headers)
    pub duration: Family<RouteLabels, Histogram>,
    /// `outrigger_gateway_backend_endpoints`
    pub endpoints: Family<EndpointLabels, Gauge>,
    /// `outrigger_gateway_endpoint_ejections_total`
    pub ejections: Family<BackendLabels, Counter>,
    /// `outrigger_gateway_table_updates_total`
    pub table_updates: Counter,
    /// `outrigger_gateway_bind_errors_total`
    pub bind_errors: Family<PortLabels, Counter>,
}

fn histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
        30.0,
    ])
}

impl GatewayMetrics {
    /// Register the families in `metrics`' registry (before it is shared).
    pub fn register(metrics: &mut Metrics) -> Self {
        let r = metrics.gateway_registry();
        Self {
            requests: registered(
                r,
                "requests",
                "Requests answered, by HTTPRoute, backend and status code",
                Family::default(),
            ),
            duration: registered(
                r,
                "request_duration_seconds",
                "Time from request received to response headers, by HTTPRoute",
                Family::new_with_constructor(histogram),
            ),
            endpoints: registered(
                r,
                "backend_endpoints",
                "Endpoints per backend by state: ready, ejected, not_ready, terminating",
                Family::default(),
            ),
            ejections: registered(
                r,
                "endpoint_ejections",
                "Endpoints ejected after consecutive failures, by backend",
                Family::default(),
            ),
            table_updates: registered(
                r,
                "table_updates",
                "Routing tables taken into service",
                Counter::default(),
            ),
            bind_errors: registered(
                r,
                "bind_errors",
                "Listener ports that failed to bind, by port",
                Family::default(),
            ),
        }
    }

    /// Set the endpoint gauges from the balancer (at scrape time: ejections expire on their own).
    pub fn refresh_endpoints(&self, balancer: &Balancer) {
        self.endpoints.clear();
        for set in balancer.all().values() {
            let c = set.counts();
            for (state, n) in [
                ("ready", c.ready),
                ("ejected", c.ejected),
                ("not_ready", c.not_ready),
                ("terminating", c.terminating),
            ] {
                self.endpoints
                    .get_or_create(&EndpointLabels {
                        backend: set.label.to_string(),
                        state,
                    })
                    .set(n);
            }
        }
    }
}
