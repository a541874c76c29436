//! Command line and environment configuration. Every flag can also come from the environment
//! variable shown in `--help`. clap types each value (URLs, the listen address and the log filter
//! with the shared `outrigger-daemon` parsers, integer ranges); [`Cli::validate`] checks what spans
//! several flags or touches the filesystem. A bad configuration exits with status 64 (EX_USAGE)
//! and one clear line, before anything is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use outrigger_daemon::cli::{self as parse, ValueError};

use crate::sink::loki::Encoding;
use crate::sink::tls::{self, TlsFiles};

/// Whether to enrich from the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubeMetadata {
    /// On when running in a cluster (`KUBERNETES_SERVICE_HOST` set).
    Auto,
    On,
    Off,
}

/// outrigger-agent: ships container logs (Loki, OTLP) with end-to-end acknowledgement and exposes
/// node and self metrics.
#[derive(Debug, Clone, Parser)]
#[command(name = "outrigger-agent", version, about, max_term_width = 100)]
pub struct Cli {
    /// Kubelet pod logs directory (`<root>/<ns>_<pod>_<uid>/<container>/<n>.log`).
    #[arg(long, env = "OUTRIGGER_LOG_ROOT", default_value = "/var/log/pods")]
    pub log_root: PathBuf,
    /// Directory for the checkpoint file (must survive restarts: a hostPath).
    #[arg(
        long,
        env = "OUTRIGGER_STATE_DIR",
        default_value = "/var/lib/outrigger-agent"
    )]
    pub state_dir: PathBuf,
    /// Loki push endpoint, e.g. http://loki:3100/loki/api/v1/push.
    #[arg(long, env = "OUTRIGGER_LOKI_URL", value_parser = sink_url)]
    pub loki_url: Option<hyper::Uri>,
    /// Loki push encoding: protobuf (snappy-compressed logproto.PushRequest) or json.
    #[arg(
        long,
        env = "OUTRIGGER_LOKI_ENCODING",
        value_enum,
        default_value = "protobuf"
    )]
    pub loki_encoding: Encoding,
    /// Loki tenant, sent as X-Scope-OrgID.
    #[arg(long, env = "OUTRIGGER_LOKI_TENANT")]
    pub loki_tenant: Option<String>,
    /// OTLP/HTTP protobuf logs endpoint, e.g. http://otel-collector:4318/v1/logs.
    #[arg(long, env = "OUTRIGGER_OTLP_LOGS_URL", value_parser = sink_url)]
    pub otlp_logs_url: Option<hyper::Uri>,
    /// Extra PEM CA bundle trusted for https:// sinks, besides the system trust store.
    #[arg(long, env = "OUTRIGGER_SINK_CA_FILE", value_name = "FILE")]
    pub sink_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented to https:// sinks (mTLS); needs --sink-client-key.
    #[arg(long, env = "OUTRIGGER_SINK_CLIENT_CERT", value_name = "FILE")]
    pub sink_client_cert: Option<PathBuf>,
    /// PEM private key of --sink-client-cert.
    #[arg(long, env = "OUTRIGGER_SINK_CLIENT_KEY", value_name = "FILE")]
    pub sink_client_key: Option<PathBuf>,
    /// Listen address for GET /metrics, /live and /ready.
    #[arg(long, env = "OUTRIGGER_METRICS", default_value = "0.0.0.0:4192", value_parser = parse::socket_addr)]
    pub metrics: SocketAddr,
    /// This node's name (label `node`; field selector of the pod watch).
    #[arg(long, env = "NODE_NAME", default_value = "")]
    pub node_name: String,
    /// Pod metadata from the Kubernetes API: auto = on when running in a cluster.
    #[arg(
        long,
        env = "OUTRIGGER_KUBE_METADATA",
        value_enum,
        default_value = "auto"
    )]
    pub kube_metadata: KubeMetadata,
    /// Where the host's /proc and /sys are mounted.
    #[arg(long, env = "OUTRIGGER_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// Largest batch, in bytes of log lines.
    #[arg(long, env = "OUTRIGGER_BATCH_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub batch_max_bytes: usize,
    /// Longest a batch waits to fill, in milliseconds.
    #[arg(long, env = "OUTRIGGER_BATCH_MAX_WAIT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_max_wait_ms: u64,
    /// Memory bound for lines read but not yet acknowledged; reading pauses when it is used up.
    #[arg(long, env = "OUTRIGGER_MAX_BUFFER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_buffer_bytes: usize,
    /// Cap on a joined (partial-line) entry; longer ones are truncated and marked.
    #[arg(long, env = "OUTRIGGER_MAX_LINE_BYTES", default_value_t = 256 * 1024)]
    pub max_line_bytes: usize,
    /// On SIGTERM, how long to keep delivering before writing checkpoints and exiting (seconds).
    #[arg(long, env = "OUTRIGGER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Offsets are written as soon as the sinks acknowledge them; this is the longest time between
    /// writes (and between refreshes of the checkpoint-age and lag metrics) otherwise (milliseconds).
    #[arg(long, env = "OUTRIGGER_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// Poll the log root instead of using inotify.
    #[arg(long, env = "OUTRIGGER_POLL")]
    pub poll: bool,
    /// Polling interval (milliseconds), also the inotify fallback's.
    #[arg(long, env = "OUTRIGGER_POLL_INTERVAL_MS", default_value_t = 250)]
    pub poll_interval_ms: u64,
    /// How long a rotated file must stay unchanged at its end before it is let go (ms).
    #[arg(long, env = "OUTRIGGER_ROTATE_GRACE_MS", default_value_t = 1000)]
    pub rotate_grace_ms: u64,
    /// First retry delay (milliseconds); doubles per attempt, with jitter.
    #[arg(long, env = "OUTRIGGER_RETRY_MIN_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_min_ms: u64,
    /// Largest retry delay (milliseconds).
    #[arg(long, env = "OUTRIGGER_RETRY_MAX_MS", default_value_t = 30_000)]
    pub retry_max_ms: u64,
    /// Per-request timeout (seconds).
    #[arg(long, env = "OUTRIGGER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Log filter (tracing syntax), e.g. info or outrigger_agent=debug.
    #[arg(long, env = "OUTRIGGER_LOG", default_value = "info", value_parser = parse::log_filter)]
    pub log: String,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub cli: Cli,
    pub loki_url: Option<hyper::Uri>,
    pub otlp_url: Option<hyper::Uri>,
    pub metrics_addr: SocketAddr,
    pub kube: bool,
    /// TLS client settings shared by the sinks (used only for https:// URLs).
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

/// An http:// or https:// URL with a host.
fn sink_url(s: &str) -> Result<hyper::Uri, ValueError> {
    let u: hyper::Uri = s
        .parse()
        .map_err(|e| ValueError::new(format!("not a valid URL: {e}")))?;
    if !matches!(u.scheme_str(), Some("http" | "https")) {
        return Err(ValueError::new("must be an http:// or https:// URL"));
    }
    if u.host().is_none_or(str::is_empty) {
        return Err(ValueError::new("has no host"));
    }
    Ok(u)
}

impl Cli {
    /// Checks everything that can be checked without side effects (besides creating the
    /// state directory, which must be writable).
    pub fn validate(self) -> Result<Config, String> {
        let loki_url = self.loki_url.clone();
        let otlp_url = self.otlp_logs_url.clone();
        if loki_url.is_none() && otlp_url.is_none() {
            return Err("no sink configured: set --loki-url and/or --otlp-logs-url".into());
        }
        let https = [&loki_url, &otlp_url]
            .into_iter()
            .flatten()
            .any(|u| u.scheme_str() == Some("https"));
        let files = TlsFiles {
            ca_file: self.sink_ca_file.clone(),
            client_cert: self.sink_client_cert.clone(),
            client_key: self.sink_client_key.clone(),
        };
        let tls = tls::client_config(&files, https).map_err(|e| e.to_string())?;
        let metrics_addr = self.metrics;
        if !self.log_root.is_dir() {
            return Err(format!(
                "--log-root {} is not a directory",
                self.log_root.display()
            ));
        }
        if !self.host_root.join("proc").is_dir() {
            return Err(format!(
                "--host-root {} has no proc directory",
                self.host_root.display()
            ));
        }
        std::fs::create_dir_all(&self.state_dir).map_err(|e| {
            format!(
                "--state-dir {} cannot be created: {e}",
                self.state_dir.display()
            )
        })?;
        if self.batch_max_bytes == 0 {
            return Err("--batch-max-bytes must be > 0".into());
        }
        if self.max_buffer_bytes < 2 * self.batch_max_bytes.min(1 << 20) {
            return Err(format!(
                "--max-buffer-bytes {} must be at least twice --batch-max-bytes (capped at 1 MiB)",
                self.max_buffer_bytes
            ));
        }
        if self.max_line_bytes < 1024 {
            return Err("--max-line-bytes must be at least 1024".into());
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err("--retry-min-ms must be <= --retry-max-ms".into());
        }
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let kube = match self.kube_metadata {
            KubeMetadata::Auto => in_cluster,
            KubeMetadata::On => true,
            KubeMetadata::Off => false,
        };
        if kube && self.node_name.is_empty() {
            return Err(
                "--kube-metadata needs --node-name (NODE_NAME) for the node-scoped pod watch"
                    .into(),
            );
        }
        Ok(Config {
            loki_url,
            otlp_url,
            metrics_addr,
            kube,
            tls,
            cli: self,
        })
    }

    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }
}
