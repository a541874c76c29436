//! Self metrics (`outrigger_agent_*`) in a prometheus-client registry, encoded by
//! `outrigger-daemon` like the proxy's and the injector's. A fixed set of counters and gauges; no
//! per-pod labels ever. The hot path holds cloned handles (an atomic each), never a label lookup.
//! Node metrics join the same registry through [`Metrics::with_node`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::node::NodeCollector;
use crate::parse::Format;

/// Monotonic counter (a shared atomic).
pub type Counter = prometheus_client::metrics::counter::Counter;
/// Integer gauge (a shared atomic).
pub type Gauge = prometheus_client::metrics::gauge::Gauge;

/// For counters mirrored from another component's monotonic total.
pub fn set_total(counter: &Counter, total: u64) {
    counter.inner().fetch_max(total, Ordering::Relaxed);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabel {
    format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    sink: &'static str,
    kind: &'static str,
}

/// Which optional parts run, so only their series are exported.
#[derive(Clone, Copy, Debug, Default)]
pub struct Enabled {
    pub loki: bool,
    pub otlp: bool,
    pub kube: bool,
}

/// Per-sink counters. A disabled sink's handles count into nothing that is exported.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    name: &'static str,
    pub lines_sent: Counter,
    pub bytes_sent: Counter,
    pub batches: Counter,
    pub retries: Counter,
    pub rejected: Counter,
    errors: Family<ErrorLabels, Counter>,
    /// Unix ns of the oldest entry in the batch being delivered (0 = none).
    pub oldest_unacked_ns: Gauge,
}

impl SinkMetrics {
    /// Counts a failed send attempt; only on the error path, so the label lookup is fine.
    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                sink: self.name,
                kind,
            })
            .inc();
    }
}

/// The per-sink families, each labelled `sink`.
#[derive(Default)]
struct SinkFamilies {
    lines_sent: Family<SinkLabel, Counter>,
    bytes_sent: Family<SinkLabel, Counter>,
    batches: Family<SinkLabel, Counter>,
    retries: Family<SinkLabel, Counter>,
    rejected: Family<SinkLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

impl SinkFamilies {
    fn sink(&self, name: &'static str) -> SinkMetrics {
        let label = SinkLabel { sink: name };
        SinkMetrics {
            name,
            lines_sent: self.lines_sent.get_or_create(&label).clone(),
            bytes_sent: self.bytes_sent.get_or_create(&label).clone(),
            batches: self.batches.get_or_create(&label).clone(),
            retries: self.retries.get_or_create(&label).clone(),
            rejected: self.rejected.get_or_create(&label).clone(),
            errors: self.errors.clone(),
            oldest_unacked_ns: Gauge::default(),
        }
    }

    fn register(self, r: &mut Registry) {
        r.register(
            "lines_sent",
            "Log entries acknowledged by the sink",
            self.lines_sent,
        );
        r.register(
            "bytes_sent",
            "Log line bytes acknowledged by the sink",
            self.bytes_sent,
        );
        r.register("batches", "Batches acknowledged by the sink", self.batches);
        r.register("retries", "Batch send retries", self.retries);
        r.register(
            "rejected_lines",
            "Entries the sink rejected (HTTP 4xx, partial success); not retried",
            self.rejected,
        );
    }
}

/// What is only known at scrape time (ages against the clock) and the error family, which is
/// listed even before its first sample.
#[derive(Debug)]
struct AtScrape {
    errors: Family<ErrorLabels, Counter>,
    last_checkpoint_unix: Gauge,
    oldest_unacked_ns: Vec<Gauge>,
}

impl Collector for AtScrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let errors = enc.encode_descriptor(
            "send_errors",
            "Failed send attempts by kind.",
            None,
            MetricType::Counter,
        )?;
        self.errors.encode(errors)?;
        let now = now_ns();
        let last = self.last_checkpoint_unix.get();
        let age = if last == 0 {
            0.0
        } else {
            (now as f64 / 1e9 - last as f64).max(0.0)
        };
        let oldest = self
            .oldest_unacked_ns
            .iter()
            .map(Gauge::get)
            .filter(|v| *v > 0)
            .min();
        let lag = oldest.map_or(0.0, |o| ((now - o) as f64 / 1e9).max(0.0));
        for (name, help, v) in [
            (
                "checkpoint_age_seconds",
                "Seconds since the checkpoint file was last written.",
                age,
            ),
            (
                "lag_seconds",
                "Age of the oldest log entry read but not yet acknowledged.",
                lag,
            ),
        ] {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)?;
        }
        Ok(())
    }
}

/// All agent metrics.
#[derive(Debug)]
pub struct Metrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub truncated_lines: Counter,
    malformed_cri: Counter,
    malformed_docker: Counter,
    pub loki: SinkMetrics,
    pub otlp: SinkMetrics,
    /// Unix seconds of the last checkpoint write (0 = never).
    pub last_checkpoint_unix: Gauge,
    pub lag_bytes: Gauge,
    pub open_files: Gauge,
    pub rotation_lost_bytes: Counter,
    pub rotation_duplicate_bytes: Counter,
    pub ready: AtomicBool,
    pub kube_pods: Gauge,
    pub kube_deleted_pods: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Enabled::default())
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Metrics {
    pub fn new(on: Enabled) -> Self {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("outrigger_agent");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let lines_read = counter(r, "lines_read", "Log lines read from files");
        let bytes_read = counter(r, "bytes_read", "Bytes read from log files");
        let truncated_lines = counter(
            r,
            "truncated_lines",
            "Lines cut at the line or join size cap",
        );
        let rotation_lost_bytes = counter(
            r,
            "rotation_lost_bytes",
            "Bytes deleted or truncated away before they were read",
        );
        let rotation_duplicate_bytes = counter(
            r,
            "rotation_duplicate_bytes",
            "Bytes of rotated copies (kubelet .gz, copytruncate) recognised as already shipped or being read and not read again",
        );
        outrigger_daemon::metrics::register_build_info(r, env!("CARGO_PKG_VERSION"));

        let malformed = Family::<FormatLabel, Counter>::default();
        let malformed_cri = malformed
            .get_or_create(&FormatLabel { format: "cri" })
            .clone();
        let malformed_docker = malformed
            .get_or_create(&FormatLabel { format: "docker" })
            .clone();
        r.register(
            "malformed_lines",
            "Lines that matched no format, shipped raw",
            malformed,
        );

        let families = SinkFamilies::default();
        let sink = |on: bool, name| {
            if on {
                families.sink(name)
            } else {
                SinkMetrics::default()
            }
        };
        let (loki, otlp) = (sink(on.loki, "loki"), sink(on.otlp, "otlp"));
        let last_checkpoint_unix = Gauge::default();
        r.register_collector(Box::new(AtScrape {
            errors: families.errors.clone(),
            last_checkpoint_unix: last_checkpoint_unix.clone(),
            oldest_unacked_ns: [(on.loki, &loki), (on.otlp, &otlp)]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, s)| s.oldest_unacked_ns.clone())
                .collect(),
        }));
        families.register(r);

        let lag_bytes = gauge(
            r,
            "lag_bytes",
            "Bytes in log files not yet acknowledged by every sink",
        );
        let open_files = gauge(r, "open_files", "Log files currently open");
        let (kube_pods, kube_deleted_pods) = if on.kube {
            (
                gauge(
                    r,
                    "kube_pods",
                    "Pods of this node in the metadata cache (deleted ones included)",
                ),
                gauge(
                    r,
                    "kube_deleted_pods",
                    "Deleted pods kept until their files are fully read",
                ),
            )
        } else {
            (Gauge::default(), Gauge::default())
        };
        Self {
            lines_read,
            bytes_read,
            truncated_lines,
            malformed_cri,
            malformed_docker,
            loki,
            otlp,
            last_checkpoint_unix,
            lag_bytes,
            open_files,
            rotation_lost_bytes,
            rotation_duplicate_bytes,
            ready: AtomicBool::new(false),
            kube_pods,
            kube_deleted_pods,
            registry,
        }
    }

    /// Adds the node metrics (read from the host on every scrape) to the exposition.
    #[must_use]
    pub fn with_node(mut self, node: NodeCollector) -> Self {
        self.registry.register_collector(Box::new(node));
        self
    }

    /// Everything as OpenMetrics text; the admin listener derives the classic format from it.
    pub fn encode(&self) -> String {
        outrigger_daemon::metrics::encode(&self.registry)
    }

    pub fn malformed(&self, f: Format) {
        match f {
            Format::Cri => self.malformed_cri.inc(),
            Format::Docker => self.malformed_docker.inc(),
        };
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
