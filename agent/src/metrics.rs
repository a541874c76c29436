//! Self metrics (`outrigger_agent_*`) in the Prometheus text format. A handful of fixed counters
//! and gauges held in atomics; no per-pod labels ever. Node metrics are appended by `node`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::parse::Format;

/// Monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// For counters mirrored from another component's monotonic total.
    pub fn set_total(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }
}

/// Integer gauge.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-sink counters.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub lines_sent: Counter,
    pub bytes_sent: Counter,
    pub batches: Counter,
    pub retries: Counter,
    pub rejected: Counter,
    errors: Mutex<Vec<(&'static str, u64)>>,
    /// Unix ns of the oldest entry in the batch being delivered (0 = none).
    pub oldest_unacked_ns: Gauge,
}

impl SinkMetrics {
    pub fn error(&self, kind: &'static str) {
        let mut g = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = g.iter_mut().find(|(k, _)| *k == kind) {
            e.1 += 1;
        } else {
            g.push((kind, 1));
        }
    }

    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// All agent metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub truncated_lines: Counter,
    pub malformed_cri: Counter,
    pub malformed_docker: Counter,
    pub loki: SinkMetrics,
    pub otlp: SinkMetrics,
    pub loki_enabled: AtomicBool,
    pub otlp_enabled: AtomicBool,
    /// Unix seconds of the last checkpoint write (0 = never).
    pub last_checkpoint_unix: Gauge,
    pub lag_bytes: Gauge,
    pub open_files: Gauge,
    pub rotation_lost_bytes: Counter,
    pub rotation_duplicate_bytes: Counter,
    pub ready: AtomicBool,
    pub kube_enabled: AtomicBool,
    pub kube_pods: Gauge,
    pub kube_deleted_pods: Gauge,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Metrics {
    pub fn malformed(&self, f: Format) {
        match f {
            Format::Cri => self.malformed_cri.inc(),
            Format::Docker => self.malformed_docker.inc(),
        }
    }

    fn sinks(&self) -> Vec<(&'static str, &SinkMetrics)> {
        let mut v = Vec::new();
        if self.loki_enabled.load(Ordering::Relaxed) {
            v.push(("loki", &self.loki));
        }
        if self.otlp_enabled.load(Ordering::Relaxed) {
            v.push(("otlp", &self.otlp));
        }
        v
    }

    /// Renders the agent's own metrics.
    pub fn render(&self, out: &mut String) {
        type Get = fn(&SinkMetrics) -> u64;
        let p = "outrigger_agent_";
        let simple: [(&str, &str, u64); 6] = [
            (
                "lines_read_total",
                "Log lines read from files.",
                self.lines_read.get(),
            ),
            (
                "bytes_read_total",
                "Bytes read from log files.",
                self.bytes_read.get(),
            ),
            (
                "truncated_lines_total",
                "Lines cut at the line or join size cap.",
                self.truncated_lines.get(),
            ),
            (
                "rotation_lost_bytes_total",
                "Bytes deleted or truncated away before they were read.",
                self.rotation_lost_bytes.get(),
            ),
            (
                "rotation_duplicate_bytes_total",
                "Bytes of rotated copies (kubelet .gz, copytruncate) recognised as already shipped or being read and not read again.",
                self.rotation_duplicate_bytes.get(),
            ),
            ("build_info", "Build information (always 1).", 1),
        ];
        for (name, help, v) in simple {
            let kind = if name == "build_info" {
                "gauge"
            } else {
                "counter"
            };
            header(out, &format!("{p}{name}"), kind, help);
            if name == "build_info" {
                let _ = writeln!(
                    out,
                    "{p}{name}{{version=\"{}\"}} {v}",
                    env!("CARGO_PKG_VERSION")
                );
            } else {
                let _ = writeln!(out, "{p}{name} {v}");
            }
        }
        header(
            out,
            &format!("{p}malformed_lines_total"),
            "counter",
            "Lines that matched no format, shipped raw.",
        );
        let _ = writeln!(
            out,
            "{p}malformed_lines_total{{format=\"cri\"}} {}",
            self.malformed_cri.get()
        );
        let _ = writeln!(
            out,
            "{p}malformed_lines_total{{format=\"docker\"}} {}",
            self.malformed_docker.get()
        );
        let sinks = self.sinks();
        let per_sink: [(&str, &str, Get); 5] = [
            (
                "lines_sent_total",
                "Log entries acknowledged by the sink.",
                |s| s.lines_sent.get(),
            ),
            (
                "bytes_sent_total",
                "Log line bytes acknowledged by the sink.",
                |s| s.bytes_sent.get(),
            ),
            ("batches_total", "Batches acknowledged by the sink.", |s| {
                s.batches.get()
            }),
            ("retries_total", "Batch send retries.", |s| s.retries.get()),
            (
                "rejected_lines_total",
                "Entries the sink rejected (HTTP 4xx, partial success); not retried.",
                |s| s.rejected.get(),
            ),
        ];
        for (name, help, get) in per_sink {
            header(out, &format!("{p}{name}"), "counter", help);
            for (sink, s) in &sinks {
                let _ = writeln!(out, "{p}{name}{{sink=\"{sink}\"}} {}", get(s));
            }
        }
        header(
            out,
            &format!("{p}send_errors_total"),
            "counter",
            "Failed send attempts by kind.",
        );
        for (sink, s) in &sinks {
            for (kind, n) in s.errors() {
                let _ = writeln!(
                    out,
                    "{p}send_errors_total{{sink=\"{sink}\",kind=\"{kind}\"}} {n}"
                );
            }
        }
        let now = now_ns();
        let last = self.last_checkpoint_unix.get();
        let age = if last == 0 {
            0.0
        } else {
            (now as f64 / 1e9 - last as f64).max(0.0)
        };
        let oldest = sinks
            .iter()
            .map(|(_, s)| s.oldest_unacked_ns.get())
            .filter(|v| *v > 0)
            .min();
        let lag_s = oldest.map_or(0.0, |o| ((now - o) as f64 / 1e9).max(0.0));
        let gauges: [(&str, &str, f64); 4] = [
            (
                "checkpoint_age_seconds",
                "Seconds since the checkpoint file was last written.",
                age,
            ),
            (
                "lag_bytes",
                "Bytes in log files not yet acknowledged by every sink.",
                self.lag_bytes.get() as f64,
            ),
            (
                "lag_seconds",
                "Age of the oldest log entry read but not yet acknowledged.",
                lag_s,
            ),
            (
                "open_files",
                "Log files currently open.",
                self.open_files.get() as f64,
            ),
        ];
        for (name, help, v) in gauges {
            header(out, &format!("{p}{name}"), "gauge", help);
            let _ = writeln!(out, "{p}{name} {v}");
        }
        if self.kube_enabled.load(Ordering::Relaxed) {
            header(
                out,
                &format!("{p}kube_pods"),
                "gauge",
                "Pods of this node in the metadata cache (deleted ones included).",
            );
            let _ = writeln!(out, "{p}kube_pods {}", self.kube_pods.get());
            header(
                out,
                &format!("{p}kube_deleted_pods"),
                "gauge",
                "Deleted pods kept until their files are fully read.",
            );
            let _ = writeln!(out, "{p}kube_deleted_pods {}", self.kube_deleted_pods.get());
        }
    }
}
