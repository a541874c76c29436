//! Command-line and environment configuration: every flag has an `OUTRIGGER_INJECTOR_*` twin.
//! Validation happens here, before any port is bound, so a bad setting exits 64 with one line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Exit status for bad configuration (BSD `EX_USAGE`).
pub const EX_USAGE: i32 = 64;

/// Raw flags as clap parses them.
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
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,
    /// Plain-HTTP admin listener: `/live`, `/ready`, `/metrics`.
    #[arg(long, env = "OUTRIGGER_INJECTOR_ADMIN", default_value = "0.0.0.0:9995")]
    pub admin: SocketAddr,
    /// Serving certificate chain (PEM); re-read when the file changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM); re-read when the file changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_KEY")]
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "OUTRIGGER_INJECTOR_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Duration,
    /// Proxy image to inject (repository:tag or repository@digest).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_IMAGE",
        default_value = concat!("ghcr.io/outrigger-mesh/outrigger-proxy:", env!("CARGO_PKG_VERSION"))
    )]
    pub proxy_image: String,
    /// imagePullPolicy of the injected container.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub proxy_pull_policy: String,
    /// CPU request of the injected proxy (Kubernetes quantity).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_CPU_REQUEST",
        default_value = "20m"
    )]
    pub proxy_cpu_request: String,
    /// Memory request of the injected proxy.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_MEMORY_REQUEST",
        default_value = "32Mi"
    )]
    pub proxy_memory_request: String,
    /// CPU limit of the injected proxy (empty: none, the usual choice to avoid throttling).
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_CPU_LIMIT", default_value = "")]
    pub proxy_cpu_limit: String,
    /// Memory limit of the injected proxy.
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_MEMORY_LIMIT",
        default_value = "128Mi"
    )]
    pub proxy_memory_limit: String,
    /// Log filter passed to the proxy as OUTRIGGER_LOG.
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_LOG", default_value = "info")]
    pub proxy_log: String,
    /// Default OUTRIGGER_DRAIN_DELAY for injected proxies (empty: derived from the grace period).
    #[arg(long, env = "OUTRIGGER_INJECTOR_PROXY_DRAIN_DELAY", default_value = "")]
    pub proxy_drain_delay: String,
    /// Default OUTRIGGER_DRAIN_TIMEOUT for injected proxies (empty: derived from the grace period).
    #[arg(
        long,
        env = "OUTRIGGER_INJECTOR_PROXY_DRAIN_TIMEOUT",
        default_value = ""
    )]
    pub proxy_drain_timeout: String,
    /// Largest AdmissionReview body accepted, in bytes (larger: 413).
    #[arg(long, env = "OUTRIGGER_INJECTOR_MAX_BODY", default_value_t = 4 * 1024 * 1024)]
    pub max_body: usize,
    /// After SIGTERM, keep serving this long (with `/ready` at 503) so endpoint removal wins the
    /// race and the API server never calls a closed port (which would skip injection).
    #[arg(long, env = "OUTRIGGER_INJECTOR_SHUTDOWN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
    /// How long in-flight reviews may take to finish after SIGTERM.
    #[arg(long, env = "OUTRIGGER_INJECTOR_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Log filter of the injector itself (tracing EnvFilter syntax).
    #[arg(long, env = "OUTRIGGER_INJECTOR_LOG", default_value = "info")]
    pub log: String,
}

/// A setting that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {flag}: {message}")]
pub struct ConfigError {
    /// The flag and its env twin.
    pub flag: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        message: message.into(),
    }
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

impl Args {
    /// Check every setting clap cannot check; returns the proxy spec on success.
    pub fn validate(&self) -> Result<ProxySpec, ConfigError> {
        if self.proxy_image.trim().is_empty() || self.proxy_image.contains(char::is_whitespace) {
            return Err(bad(
                "--proxy-image (OUTRIGGER_INJECTOR_PROXY_IMAGE)",
                format!("not an image reference: {:?}", self.proxy_image),
            ));
        }
        if !matches!(
            self.proxy_pull_policy.as_str(),
            "Always" | "IfNotPresent" | "Never"
        ) {
            return Err(bad(
                "--proxy-pull-policy (OUTRIGGER_INJECTOR_PROXY_PULL_POLICY)",
                format!(
                    "{:?} is not Always, IfNotPresent or Never",
                    self.proxy_pull_policy
                ),
            ));
        }
        let quantities: [(&'static str, &str, bool); 4] = [
            (
                "--proxy-cpu-request (OUTRIGGER_INJECTOR_PROXY_CPU_REQUEST)",
                &self.proxy_cpu_request,
                true,
            ),
            (
                "--proxy-memory-request (OUTRIGGER_INJECTOR_PROXY_MEMORY_REQUEST)",
                &self.proxy_memory_request,
                true,
            ),
            (
                "--proxy-cpu-limit (OUTRIGGER_INJECTOR_PROXY_CPU_LIMIT)",
                &self.proxy_cpu_limit,
                false,
            ),
            (
                "--proxy-memory-limit (OUTRIGGER_INJECTOR_PROXY_MEMORY_LIMIT)",
                &self.proxy_memory_limit,
                false,
            ),
        ];
        for (flag, q, required) in quantities {
            if q.is_empty() && !required {
                continue;
            }
            if !valid_quantity(q) {
                return Err(bad(flag, format!("{q:?} is not a Kubernetes quantity")));
            }
        }
        for (flag, d) in [
            (
                "--proxy-drain-delay (OUTRIGGER_INJECTOR_PROXY_DRAIN_DELAY)",
                &self.proxy_drain_delay,
            ),
            (
                "--proxy-drain-timeout (OUTRIGGER_INJECTOR_PROXY_DRAIN_TIMEOUT)",
                &self.proxy_drain_timeout,
            ),
        ] {
            if !d.is_empty() {
                humantime::parse_duration(d).map_err(|e| bad(flag, format!("{d:?}: {e}")))?;
            }
        }
        if self.max_body < 1024 {
            return Err(bad(
                "--max-body (OUTRIGGER_INJECTOR_MAX_BODY)",
                "must be at least 1024 bytes",
            ));
        }
        if self.tls_reload_interval.is_zero() {
            return Err(bad(
                "--tls-reload-interval (OUTRIGGER_INJECTOR_TLS_RELOAD_INTERVAL)",
                "must be greater than zero",
            ));
        }
        if self.listen == self.admin {
            return Err(bad(
                "--admin (OUTRIGGER_INJECTOR_ADMIN)",
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

    #[test]
    fn validate_rejects_bad_settings() {
        let base = Args::parse_from(["x", "--tls-cert", "c", "--tls-key", "k"]);
        assert!(base.validate().is_ok());
        let mut a = base.clone();
        a.proxy_memory_limit = "lots".into();
        let e = a.validate().unwrap_err().to_string();
        assert!(e.contains("--proxy-memory-limit"), "{e}");
        let mut a = base.clone();
        a.proxy_drain_delay = "soon".into();
        assert!(a.validate().is_err());
        let mut a = base.clone();
        a.proxy_pull_policy = "Sometimes".into();
        assert!(a.validate().is_err());
        let mut a = base.clone();
        a.tls_reload_interval = Duration::ZERO;
        assert!(a.validate().is_err());
        let mut a = base;
        a.admin = a.listen;
        assert!(a.validate().unwrap_err().to_string().contains("--admin"));
    }
}
