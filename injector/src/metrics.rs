//! Prometheus metrics (`outrigger_injector_*`), rendered in the OpenMetrics text format (the admin
//! server derives the classic format from it).
//! Label sets are closed enums, so cardinality stays bounded whatever the API server sends.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use outrigger_daemon::metrics::registered;

/// `result` (`injected|skipped|error`) and `reason` (skip/error reason, `none` when injected).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// Outcome.
    pub result: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// One `reason` label and one `result` label, the same sets as the other daemons'.
pub use outrigger_daemon::metrics::{ReasonLabels, ResultLabels};

/// All injector metrics plus the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Admission reviews answered, by outcome.
    pub admissions: Family<AdmissionLabels, Counter>,
    /// Time from request received to response ready.
    pub duration: Histogram,
    /// HTTP requests refused before reaching the admission logic.
    pub rejected: Family<ReasonLabels, Counter>,
    /// Certificate reloads.
    pub tls_reloads: Family<ResultLabels, Counter>,
    /// TLS handshakes that failed.
    pub tls_handshake_errors: Counter,
}

impl Metrics {
    /// Register everything.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("outrigger_injector");
        let r = &mut registry;
        let admissions = registered(
            r,
            "admissions",
            "Admission reviews answered, by result (injected, skipped, error) and reason",
            Family::default(),
        );
        // 0.25 ms .. ~4 s: a review is normally well under a millisecond; the API server's
        // timeout (5 s in the chart) bounds the top.
        let duration = registered(
            r,
            "admission_duration_seconds",
            "Time to answer one admission review (body read, decision, response), in seconds",
            Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
        );
        let rejected = registered(
            r,
            "requests_rejected",
            "HTTP requests refused before admission (malformed, too_large, timeout, method, not_found)",
            Family::default(),
        );
        let tls_reloads = registered(
            r,
            "tls_cert_reloads",
            "Serving certificate reloads after the files changed, by result (success, error)",
            Family::default(),
        );
        let tls_handshake_errors = registered(
            r,
            "tls_handshake_errors",
            "TLS handshakes on the webhook port that failed",
            Counter::default(),
        );
        outrigger_daemon::metrics::register_build_info(&mut registry, env!("CARGO_PKG_VERSION"));
        Self {
            registry,
            admissions,
            duration,
            rejected,
            tls_reloads,
            tls_handshake_errors,
        }
    }

    /// Count one answered review.
    pub fn admission(&self, result: &'static str, reason: &'static str) {
        self.admissions
            .get_or_create(&AdmissionLabels { result, reason })
            .inc();
    }

    /// Count one refused request.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// OpenMetrics text exposition (what Prometheus asks for).
    pub fn render(&self) -> String {
        outrigger_daemon::metrics::encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
