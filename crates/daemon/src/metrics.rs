//! Metrics exposition shared by the daemons: a `prometheus-client` registry encoded as
//! OpenMetrics text (what Prometheus asks for), the classic Prometheus text format derived from it
//! for everything else (e.g. `promtool check metrics`), and the content negotiation between them;
//! the one-label sets every daemon uses (`{reason}`, `{result}`), and registering a metric while
//! keeping a handle to it.

use std::collections::HashSet;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// Content type of [`encode`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`classic`]'s output.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text for `registry`; empty (and logged) if encoding fails.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(8192);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding metrics failed");
        out.clear();
    }
    out
}

/// Classic Prometheus text format (0.0.4) from OpenMetrics text: counter families are named with
/// their `_total` suffix in `# HELP`/`# TYPE` (OpenMetrics names the family without it), and the
/// OpenMetrics-only `# EOF`/`# UNIT` lines go. Samples are the same in both formats.
pub fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let (name, tail) = line.strip_prefix(prefix)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Whether a scraper asked for OpenMetrics in its `Accept` headers (Prometheus does).
pub fn wants_openmetrics(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// `{reason}` with a static reason string.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

/// `{result}` with a static result string (`success` or `error` for certificate reloads).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Outcome.
    pub result: &'static str,
}

/// Registers `metric` as `name` and returns it: the registry keeps one handle, the daemon's
/// metrics struct the other (both share the same series).
pub fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Registers `build_info{version}` (always 1), which every daemon exports.
pub fn register_build_info(registry: &mut Registry, version: &'static str) {
    let build = Family::<BuildLabels, Gauge>::default();
    build.get_or_create(&BuildLabels { version }).set(1);
    registry.register("build_info", "Build information (always 1)", build);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    fn registry() -> Registry {
        let mut r = Registry::with_prefix("t");
        registered(&mut r, "reloads", "Reloads", Counter::<u64>::default()).inc();
        let g = Gauge::<i64>::default();
        g.set(3);
        r.register("open", "Open things", g);
        register_build_info(&mut r, "1.2.3");
        let reloads = Family::<ResultLabels, Counter>::default();
        let reloads = registered(&mut r, "cert_reloads", "Reloads by result", reloads);
        reloads
            .get_or_create(&ResultLabels { result: "success" })
            .inc_by(2);
        let retries = Family::<ReasonLabels, Counter>::default();
        registered(&mut r, "retries", "Retries by cause", retries)
            .get_or_create(&ReasonLabels { reason: "timeout" })
            .inc();
        r
    }

    #[test]
    fn openmetrics_and_classic_carry_the_same_samples() {
        let om = encode(&registry());
        assert!(om.contains("# TYPE t_reloads counter\n"), "{om}");
        assert!(om.contains("t_reloads_total 1\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = classic(&om);
        for line in [
            "# HELP t_reloads_total Reloads.",
            "# TYPE t_reloads_total counter",
            "t_reloads_total 1",
            "# TYPE t_open gauge",
            "t_open 3",
            "t_build_info{version=\"1.2.3\"} 1",
            "t_cert_reloads_total{result=\"success\"} 2",
            "t_retries_total{reason=\"timeout\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn negotiation_follows_accept() {
        let mut h = http::HeaderMap::new();
        assert!(!wants_openmetrics(&h));
        h.append(http::header::ACCEPT, "text/plain".parse().unwrap());
        h.append(
            http::header::ACCEPT,
            "application/openmetrics-text;version=1.0.0;q=0.5"
                .parse()
                .unwrap(),
        );
        assert!(wants_openmetrics(&h));
    }
}
