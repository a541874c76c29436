//! Command-line and environment configuration: every flag has an `OUTRIGGER_INJECTOR_*` twin.
//! clap parses each flag into its type with the shared `outrigger-daemon` parsers (the durations
//! forwarded to the sidecar are checked with the very parser the proxy uses), so a bad setting
//! exits 64 with one line before any port is bound; [`Args::validate`] keeps the rules that span
//! several flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use outrigger_daemon::cli::{self as parse, ValueError};

pub use outrigger_daemon::{ConfigError, EX_USAGE};

/// Flags, typed and range-checked by clap.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "outrigger-injector",
    version,
    about = "Mutating admission webhook that injects outrigger-proxy as a native sidecar"
)]
pub struct Args {
    /// HTTPS listener for the webhook (`POST /mutate`, `POST /mutate/namespace`).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_LISTEN",
        default_value = "0.0.0.0:8443",
        value_parser = parse::socket_addr
    )]
    pub listen: SocketAddr,
    /// Plain-HTTP admin listener: `/live`, `/ready`, `/metrics`.
    #[arg(long, env = "OUTRIGGER_INJECTOR_ADMIN", default_value = "0.0.0.0:9995", value_parser = parse::socket_addr)]
    pub admin: SocketAddr,
    /// Serving certificate chain (PEM); re-read when the file changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM); re-read when the file changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_KEY")]
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse::positive_duration)]
    pub tls_reload_interval: Duration,
    /// Proxy image to inject (repository:tag or repository@digest).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_IMAGE",
        default_value = concat!("ghcr.io/outrigger-mesh/outrigger-proxy:", env!("CARGO_PKG_VERSION")),
        value_parser = image_ref
    )]
    pub proxy_image: String,
    /// imagePullPolicy of the injected container.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_PULL_POLICY",
        default_value = "IfNotPresent",
        value_parser = ["Always", "IfNotPresent", "Never"]
    )]
    pub proxy_pull_policy: String,
    /// CPU request of the injected proxy (Kubernetes quantity).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_CPU_REQUEST",
        default_value = "20m",
        value_parser = quantity
    )]
    pub proxy_cpu_request: String,
    /// Memory request of the injected proxy.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_MEMORY_REQUEST",
        default_value = "32Mi",
        value_parser = quantity
    )]
    pub proxy_memory_request: String,
    /// CPU limit of the injected proxy (empty: none, the usual choice to avoid throttling).
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_CPU_LIMIT", default_value = "", value_parser = optional_quantity)]
    pub proxy_cpu_limit: String,
    /// Memory limit of the injected proxy.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_MEMORY_LIMIT",
        default_value = "128Mi",
        value_parser = optional_quantity
    )]
    pub proxy_memory_limit: String,
    /// Worker threads of the injected proxy, passed as OUTRIGGER_WORKERS: 1..=256, or `auto` for
    /// the proxy's own choice (the CPUs its cgroup allows, at most 2). 1 runs the proxy's
    /// current-thread runtime, the one measured in bench/proxy.sh: a sidecar's load is one pod's,
    /// and without a CPU limit `auto` would see every core of the node.
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_WORKERS", default_value = "1", value_parser = proxy_workers)]
    pub proxy_workers: String,
    /// Log filter passed to the proxy as OUTRIGGER_LOG.
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_LOG", default_value = "info", value_parser = parse::log_filter)]
    pub proxy_log: String,
    /// Default OUTRIGGER_DRAIN_DELAY for injected proxies, in the proxy's duration syntax (empty:
    /// derived from the grace period).
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_DRAIN_DELAY", default_value = "", value_parser = forwarded_duration)]
    pub proxy_drain_delay: String,
    /// Default OUTRIGGER_DRAIN_TIMEOUT for injected proxies, in the proxy's duration syntax
    /// (empty: derived from the grace period).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_DRAIN_TIMEOUT",
        default_value = "",
        value_parser = forwarded_duration
    )]
    pub proxy_drain_timeout: String,
    /// Largest AdmissionReview body accepted, at least 1024 bytes (larger: 413). Sizes accept
    /// KiB/MiB/GiB suffixes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_MAX_BODY", default_value = "4194304", value_parser = parse::size_in(1024..=1 << 30))]
    pub max_body: u64,
    /// After SIGTERM, keep serving this long (with `/ready` at 503) so endpoint removal wins the
    /// race and the API server never calls a closed port (which would skip injection).
    #[arg(long, env = "OUTRIGGER_INJECTOR_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse::duration)]
    pub shutdown_delay: Duration,
    /// How long in-flight reviews may take to finish after SIGTERM.
    #[arg(long, env = "OUTRIGGER_INJECTOR_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse::duration)]
    pub shutdown_timeout: Duration,
    /// Log filter of the injector itself (tracing EnvFilter syntax).
    #[arg(long, env = "OUTRIGGER_INJECTOR_LOG", default_value = "info", value_parser = parse::log_filter)]
    pub log: String,
}

/// What the patch builder needs to render the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// Container image.
    pub image: String,
    /// imagePullPolicy.
    pub pull_policy: String,
    /// CPU request (quantity).
    pub cpu_request: String,
    /// Memory request (quantity).
    pub memory_request: String,
    /// CPU limit; empty: none.
    pub cpu_limit: String,
    /// Memory limit; empty: none.
    pub memory_limit: String,
    /// OUTRIGGER_LOG.
    pub log: String,
    /// OUTRIGGER_WORKERS; `auto`: not set.
    pub workers: String,
    /// OUTRIGGER_DRAIN_DELAY; empty: not set.
    pub drain_delay: String,
    /// OUTRIGGER_DRAIN_TIMEOUT; empty: not set.
    pub drain_timeout: String,
}

impl Default for ProxySpec {
    fn default() -> Self {
        Self {
            image: concat!(
                "ghcr.io/outrigger-mesh/outrigger-proxy:",
                env!("CARGO_PKG_VERSION")
            )
            .to_owned(),
            pull_policy: "IfNotPresent".to_owned(),
            cpu_request: "20m".to_owned(),
            memory_request: "32Mi".to_owned(),
            cpu_limit: String::new(),
            memory_limit: "128Mi".to_owned(),
            log: "info".to_owned(),
            workers: "1".to_owned(),
            drain_delay: String::new(),
            drain_timeout: String::new(),
        }
    }
}

/// Kubernetes resource quantity, the subset the API accepts for cpu/memory
/// (`123`, `0.5`, `100m`, `64Mi`, `1G`, `1e3`). The API server would reject a bad one on
/// every injected pod, so it is caught at startup instead.
fn valid_quantity(q: &str) -> bool {
    let num_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return false;
    }
    matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || (suffix.starts_with(['e', 'E'])
        && suffix.len() > 1
        && suffix[1..].chars().all(|c| c.is_ascii_digit()))
}

fn quantity(s: &str) -> Result<String, ValueError> {
    if valid_quantity(s) {
        Ok(s.to_owned())
    } else {
        Err(ValueError::new(format!(
            "{s:?} is not a Kubernetes quantity (e.g. 20m, 0.5, 64Mi)"
        )))
    }
}

/// A limit: a quantity, or empty for none.
fn optional_quantity(s: &str) -> Result<String, ValueError> {
    if s.is_empty() {
        Ok(String::new())
    } else {
        quantity(s)
    }
}

fn image_ref(s: &str) -> Result<String, ValueError> {
    if s.trim().is_empty() || s.contains(char::is_whitespace) {
        return Err(ValueError::new(format!("not an image reference: {s:?}")));
    }
    Ok(s.to_owned())
}

/// A duration handed to every injected proxy as an env var: empty (not set), or a value the
/// proxy's own parser accepts, so no value accepted here can make the sidecar exit 64.
fn forwarded_duration(s: &str) -> Result<String, ValueError> {
    if s.is_empty() {
        return Ok(String::new());
    }
    parse::duration(s).map(|_| s.to_owned())
}

/// The proxy's worker count as the proxy's own parser accepts it, or `auto`.
fn proxy_workers(s: &str) -> Result<String, ValueError> {
    if s == "auto" {
        return Ok(s.to_owned());
    }
    parse::workers(s)
        .map(|_| s.to_owned())
        .map_err(|e| ValueError::new(format!("{e}, or auto")))
}

impl Args {
    /// Check the rules that span several flags; returns the proxy spec on success.
    pub fn validate(&self) -> Result<ProxySpec, ConfigError> {
        if self.listen == self.admin {
            return Err(ConfigError::new(
                parse::setting::<Self>("admin"),
                "must differ from --listen",
            ));
        }
        Ok(ProxySpec {
            image: self.proxy_image.clone(),
            pull_policy: self.proxy_pull_policy.clone(),
            cpu_request: self.proxy_cpu_request.clone(),
            memory_request: self.proxy_memory_request.clone(),
            cpu_limit: self.proxy_cpu_limit.clone(),
            memory_limit: self.proxy_memory_limit.clone(),
            log: self.proxy_log.clone(),
            workers: self.proxy_workers.clone(),
            drain_delay: self.proxy_drain_delay.clone(),
            drain_timeout: self.proxy_drain_timeout.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["20m", "1", "0.5", "64Mi", "1G", "1e3", "128Mi"] {
            assert!(valid_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "20 m", "1.2.3", "64MB", "-1", ".5", "1e"] {
            assert!(!valid_quantity(bad), "{bad}");
        }
    }

    fn refused(extra: &[&str]) -> String {
        let mut args = vec!["x", "--tls-cert", "c", "--tls-key", "k"];
        args.extend_from_slice(extra);
        match parse::try_parse_from::<Args, _, _>(args) {
            Err(parse::Outcome::Invalid(line)) => line,
            Ok(a) => a.validate().unwrap_err().to_string(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let base = Args::parse_from(["x", "--tls-cert", "c", "--tls-key", "k"]);
        assert!(base.validate().is_ok());
        let e = refused(&["--proxy-memory-limit", "lots"]);
        assert!(e.contains("--proxy-memory-limit"), "{e}");
        let e = refused(&["--proxy-drain-delay", "soon"]);
        assert!(
            e.contains("--proxy-drain-delay (OUTRIGGER_INJECTOR_PROXY_DRAIN_DELAY)"),
            "{e}"
        );
        // The proxy's syntax: a unit is required, whitespace is refused.
        assert!(refused(&["--proxy-drain-timeout", "30"]).contains("no unit"));
        assert!(refused(&["--proxy-drain-timeout", "1 0s"]).contains("whitespace"));
        assert!(refused(&["--proxy-pull-policy", "Sometimes"]).contains("--proxy-pull-policy"));
        assert!(refused(&["--tls-reload-interval", "0s"]).contains("--tls-reload-interval"));
        assert!(refused(&["--max-body", "1000"]).contains("--max-body"));
        assert!(refused(&["--proxy-image", "a b"]).contains("--proxy-image"));
        for bad in ["0", "257", "two", ""] {
            let e = refused(&["--proxy-workers", bad]);
            assert!(
                e.contains("--proxy-workers (OUTRIGGER_INJECTOR_PROXY_WORKERS)"),
                "{bad}: {e}"
            );
        }
        let e = refused(&["--listen", "127.0.0.1:9", "--admin", "127.0.0.1:9"]);
        assert!(e.contains("--admin"), "{e}");
        let ok = Args::parse_from([
            "x",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--proxy-drain-timeout",
            "2min",
            "--proxy-cpu-limit",
            "",
            "--proxy-workers",
            "auto",
        ]);
        let spec = ok.validate().unwrap();
        assert_eq!(spec.drain_timeout, "2min");
        assert_eq!(spec.workers, "auto");
        assert_eq!(base.validate().unwrap().workers, "1");
    }
}
