//! Configuration: command-line flags (each with an env-var twin), validation and derived defaults.
//!
//! Flags are parsed by clap into raw strings ([`Cli`]); every value is then validated here into a
//! typed [`Config`] so that one bad setting produces one clear line naming it (exit 64) before any
//! port is bound. Settings that are not flags (`OUTRIGGER_TERMINATION_GRACE_PERIOD`, `OTEL_*`) are
//! read through the [`Strings`] trait, the linkerd idiom that lets tests supply values without
//! touching the process environment.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Exit status for bad configuration (`EX_USAGE` from sysexits.h).
pub const EX_USAGE: i32 = 64;

/// Source of named string settings (the process environment in production, a map in tests).
pub trait Strings {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Strings for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> Strings for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl<S: std::hash::BuildHasher> Strings for HashMap<&str, &str, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).map(|v| (*v).to_owned())
    }
}

/// A bad setting: names the flag/env var and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// The flag (and env var) that is wrong.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

const AFTER_HELP: &str = "\
Other environment variables:
  OUTRIGGER_TERMINATION_GRACE_PERIOD  Pod terminationGracePeriodSeconds (e.g. 30 or 30s). When set,
                                      drain defaults become: margin = clamp(grace/10, 1s, 5s),
                                      delay = min(5s, (grace - margin)/4),
                                      timeout = grace - margin - delay (30s -> 5s + 22s).
  OTEL_EXPORTER_OTLP_ENDPOINT         OTLP/HTTP base URL (http:// or https://); enables tracing (spans
                                      to <url>/v1/traces).
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  Full traces URL (overrides the above).
  OTEL_EXPORTER_OTLP_PROTOCOL         Only http/protobuf is supported.
  OTEL_EXPORTER_OTLP_CERTIFICATE      PEM CA bundle trusted for an https:// endpoint (on top of the
                                      system roots); _TRACES_CERTIFICATE overrides it.
  OTEL_EXPORTER_OTLP_HEADERS          Extra export headers, key=value,key2=value2 (values
                                      percent-encoded); _TRACES_HEADERS overrides it.
  OTEL_SERVICE_NAME                   service.name resource attribute [default: outrigger-proxy].
  OTEL_RESOURCE_ATTRIBUTES            Extra resource attributes, key=value,key2=value2.
  OTEL_TRACES_SAMPLER                 always_on | always_off | traceidratio | parentbased_always_on
                                      (default) | parentbased_always_off | parentbased_traceidratio.
  OTEL_TRACES_SAMPLER_ARG             Ratio for the *traceidratio samplers, 0..1.

Signals: SIGTERM/SIGINT start the drain (/ready -> 503, serve for the drain delay with
Connection: close / GOAWAY, close the listener, finish in-flight requests up to the drain timeout,
exit 0). Exit status 64 means bad configuration.";

/// outrigger-proxy: the Outrigger sidecar data plane.
///
/// Every flag can also be set through the environment variable shown next to it. Durations accept
/// `ms`, `s`, `m` or `h` suffixes (a bare number means seconds). Sizes accept `KiB`/`MiB`/`GiB`
/// suffixes (a bare number means bytes).
#[derive(Debug, Clone, Parser)]
#[command(name = "outrigger-proxy", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Address clients connect to.
    #[arg(long, env = "OUTRIGGER_INBOUND", default_value = "0.0.0.0:4143")]
    pub inbound: String,
    /// Address of the local app the proxy forwards to (HTTP/1.1, pooled keep-alive).
    #[arg(long, env = "OUTRIGGER_APP", default_value = "127.0.0.1:8080")]
    pub app: String,
    /// Admin listener: GET /live, GET /ready, GET /metrics.
    #[arg(long, env = "OUTRIGGER_ADMIN", default_value = "0.0.0.0:4191")]
    pub admin: String,
    /// PEM certificate chain; with --tls-key turns on TLS (1.2/1.3, ALPN h2 + http/1.1) for the
    /// inbound listener. Reloaded when the file changes.
    #[arg(long, env = "OUTRIGGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert. Reloaded when the file changes.
    #[arg(long, env = "OUTRIGGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate signed by it (mTLS).
    #[arg(long, env = "OUTRIGGER_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// How long to keep accepting and serving after SIGTERM before closing the listener
    /// [default: derived from OUTRIGGER_TERMINATION_GRACE_PERIOD, else 5s].
    #[arg(long, env = "OUTRIGGER_DRAIN_DELAY")]
    pub drain_delay: Option<String>,
    /// How long in-flight requests may run after the listener closes before connections are
    /// forcibly closed [default: derived from OUTRIGGER_TERMINATION_GRACE_PERIOD, else 25s].
    #[arg(long, env = "OUTRIGGER_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
    /// Worker threads [default: available cores, at most 2].
    #[arg(long, env = "OUTRIGGER_WORKERS")]
    pub workers: Option<String>,
    /// Time a client has to send complete request headers (slowloris guard; answered with 408).
    #[arg(long, env = "OUTRIGGER_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: String,
    /// Time to establish a TCP connection to the app (answered with 504 when exceeded).
    #[arg(long, env = "OUTRIGGER_CONNECT_TIMEOUT", default_value = "1s")]
    pub connect_timeout: String,
    /// Time from receiving a request until the app's response headers, retries included
    /// (answered with 504 when exceeded). 0 disables.
    #[arg(long, env = "OUTRIGGER_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: String,
    /// Idle keep-alive timeout for client connections (and pooled app connections).
    #[arg(long, env = "OUTRIGGER_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: String,
    /// An HTTP/1 keep-alive connection idle this long hands its HTTP buffers back and waits for
    /// the next request with a few hundred bytes of state (0 disables).
    #[arg(long, env = "OUTRIGGER_PARK_AFTER", default_value = "10ms")]
    pub park_after: String,
    /// Maximum total size of request headers (answered with 431).
    #[arg(long, env = "OUTRIGGER_MAX_HEADER_BYTES", default_value = "16KiB")]
    pub max_header_bytes: String,
    /// Maximum number of request headers (answered with 431).
    #[arg(long, env = "OUTRIGGER_MAX_HEADERS", default_value = "100")]
    pub max_headers: String,
    /// Maximum request body size (answered with 413). 0 disables the cap.
    #[arg(long, env = "OUTRIGGER_MAX_BODY_BYTES", default_value = "10MiB")]
    pub max_body_bytes: String,
    /// Maximum retries per request (0 disables retries).
    #[arg(long, env = "OUTRIGGER_RETRY_ATTEMPTS", default_value = "2")]
    pub retry_attempts: String,
    /// Largest request body kept for replay; larger bodies are never retried.
    #[arg(long, env = "OUTRIGGER_RETRY_MAX_BODY", default_value = "64KiB")]
    pub retry_max_body: String,
    /// Retry budget: retries allowed as a fraction of requests (over a 10 s window).
    #[arg(long, env = "OUTRIGGER_RETRY_BUDGET_RATIO", default_value = "0.2")]
    pub retry_budget_ratio: String,
    /// Retry budget: retries per second always allowed on top of the ratio.
    #[arg(long, env = "OUTRIGGER_RETRY_BUDGET_MIN_PER_SEC", default_value = "10")]
    pub retry_budget_min_per_sec: String,
    /// Base retry backoff; attempt n waits a random time in [0, base * 2^n] (full jitter), capped
    /// at 1 s.
    #[arg(long, env = "OUTRIGGER_RETRY_BACKOFF", default_value = "25ms")]
    pub retry_backoff: String,
    /// Write one JSON access-log line per request to stdout (true/false).
    #[arg(long, env = "OUTRIGGER_ACCESS_LOG", default_value = "true")]
    pub access_log: String,
    /// Diagnostic log filter (tracing EnvFilter syntax); logs go to stderr as JSON.
    #[arg(long, env = "OUTRIGGER_LOG", default_value = "info")]
    pub log: String,
}

/// TLS settings for the inbound listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain PEM file.
    pub cert: PathBuf,
    /// Private key PEM file.
    pub key: PathBuf,
    /// Client CA bundle (mTLS) when set.
    pub client_ca: Option<PathBuf>,
}

/// Retry policy settings.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Maximum retries per request.
    pub attempts: u32,
    /// Replay buffer cap in bytes.
    pub max_body: usize,
    /// Budget fraction of requests.
    pub budget_ratio: f32,
    /// Budget floor, retries per second.
    pub budget_min_per_sec: u32,
    /// Backoff base.
    pub backoff: Duration,
}

/// OTLP trace export settings (from the standard `OTEL_*` variables).
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// Full URL spans are POSTed to (`.../v1/traces`).
    pub traces_endpoint: String,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// Extra resource attributes.
    pub resource_attributes: Vec<(String, String)>,
    /// Sampler.
    pub sampler: Sampler,
    /// PEM CA bundle trusted for an https:// endpoint, on top of the system roots.
    pub certificate: Option<std::path::PathBuf>,
    /// Extra request headers (e.g. authorization for a hosted collector).
    pub headers: Vec<(String, String)>,
}

/// Supported `OTEL_TRACES_SAMPLER` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with the ratio.
    Ratio(f64),
    /// `parentbased_always_on`
    ParentAlwaysOn,
    /// `parentbased_always_off`
    ParentAlwaysOff,
    /// `parentbased_traceidratio`
    ParentRatio(f64),
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Inbound listener address.
    pub inbound: SocketAddr,
    /// App address.
    pub app: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// TLS for the inbound listener.
    pub tls: Option<TlsConfig>,
    /// Drain delay after SIGTERM.
    pub drain_delay: Duration,
    /// Drain timeout after the delay.
    pub drain_timeout: Duration,
    /// Worker threads.
    pub workers: usize,
    /// Request-header read timeout.
    pub header_read_timeout: Duration,
    /// App connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (to response headers); `None` when disabled.
    pub request_timeout: Option<Duration>,
    /// Idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Idle time after which an HTTP/1 connection is parked; `None` when disabled.
    pub park_after: Option<Duration>,
    /// Maximum request header bytes.
    pub max_header_bytes: usize,
    /// Maximum number of request headers.
    pub max_headers: usize,
    /// Maximum request body bytes; `None` when uncapped.
    pub max_body_bytes: Option<u64>,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Access log on stdout.
    pub access_log: bool,
    /// Diagnostic log filter.
    pub log: String,
    /// OTLP tracing, when an endpoint is configured.
    pub otel: Option<OtelConfig>,
}

/// Default drain delay and timeout when no grace period is known.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// See [`DEFAULT_DRAIN_DELAY`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Derive (drain delay, drain timeout) from the pod's termination grace period `g`:
/// margin = clamp(g/10, 1 s, 5 s) is kept free so the process always exits before the kubelet's
/// SIGKILL; delay = min(5 s, (g − margin)/4); timeout = g − margin − delay.
/// For g = 30 s this gives 5 s + 22 s (exit by 27 s).
pub fn derive_drain(grace: Duration) -> Option<(Duration, Duration)> {
    let margin = (grace / 10).clamp(Duration::from_secs(1), Duration::from_secs(5));
    let budget = grace.checked_sub(margin)?;
    if budget.is_zero() {
        return None;
    }
    let delay = DEFAULT_DRAIN_DELAY.min(budget / 4);
    Some((delay, budget.saturating_sub(delay)))
}

/// Parse a duration: `250ms`, `5s`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse a byte size: `512`, `16KiB`, `10MiB`, `1GiB` (also `K`/`KB`, `M`/`MB`, `G`/`GB` as
/// binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 64KiB, 10MiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn parse_bool(setting: &str, s: &str) -> Result<bool, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(setting, format!("{s:?} is not a boolean (true/false)"))),
    }
}

fn parse_addr(setting: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| bad(setting, format!("{s:?} is not HOST:PORT ({e})")))?;
    addrs
        .next()
        .ok_or_else(|| bad(setting, format!("{s:?} resolves to no address")))
}

fn dur(setting: &str, s: &str) -> Result<Duration, ConfigError> {
    parse_duration(s).map_err(|m| bad(setting, m))
}

fn nonzero(setting: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(bad(setting, "must be greater than 0"))
    } else {
        Ok(d)
    }
}

fn readable(setting: &str, path: &std::path::Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
}

impl Config {
    /// Validate raw flag values plus non-flag settings from `env`.
    pub fn from_cli(cli: &Cli, env: &dyn Strings) -> Result<Self, ConfigError> {
        let inbound = parse_addr("--inbound (OUTRIGGER_INBOUND)", &cli.inbound)?;
        let app = parse_addr("--app (OUTRIGGER_APP)", &cli.app)?;
        let admin = parse_addr("--admin (OUTRIGGER_ADMIN)", &cli.admin)?;
        if inbound.port() != 0 && inbound == admin {
            return Err(bad(
                "--admin (OUTRIGGER_ADMIN)",
                "must differ from --inbound",
            ));
        }

        let tls = match (&cli.tls_cert, &cli.tls_key) {
            (Some(cert), Some(key)) => {
                readable("--tls-cert (OUTRIGGER_TLS_CERT)", cert)?;
                readable("--tls-key (OUTRIGGER_TLS_KEY)", key)?;
                if let Some(ca) = &cli.client_ca {
                    readable("--client-ca (OUTRIGGER_CLIENT_CA)", ca)?;
                }
                Some(TlsConfig {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: cli.client_ca.clone(),
                })
            }
            (Some(_), None) => {
                return Err(bad(
                    "--tls-key (OUTRIGGER_TLS_KEY)",
                    "required when --tls-cert is set",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "--tls-cert (OUTRIGGER_TLS_CERT)",
                    "required when --tls-key is set",
                ));
            }
            (None, None) => {
                if cli.client_ca.is_some() {
                    return Err(bad(
                        "--client-ca (OUTRIGGER_CLIENT_CA)",
                        "requires --tls-cert and --tls-key",
                    ));
                }
                None
            }
        };

        let grace_setting = "OUTRIGGER_TERMINATION_GRACE_PERIOD";
        let derived = match env.get(grace_setting).filter(|v| !v.trim().is_empty()) {
            Some(v) => {
                let grace = dur(grace_setting, &v)?;
                Some(derive_drain(grace).ok_or_else(|| {
                    bad(grace_setting, format!("{v:?} is too short (at least 2s)"))
                })?)
            }
            None => None,
        };
        let (def_delay, def_timeout) =
            derived.unwrap_or((DEFAULT_DRAIN_DELAY, DEFAULT_DRAIN_TIMEOUT));
        let drain_delay = match &cli.drain_delay {
            Some(s) => dur("--drain-delay (OUTRIGGER_DRAIN_DELAY)", s)?,
            None => def_delay,
        };
        let drain_timeout = match &cli.drain_timeout {
            Some(s) => dur("--drain-timeout (OUTRIGGER_DRAIN_TIMEOUT)", s)?,
            None => def_timeout,
        };

        let workers = match &cli.workers {
            Some(s) => {
                let n: usize = s.trim().parse().map_err(|_| {
                    bad(
                        "--workers (OUTRIGGER_WORKERS)",
                        format!("{s:?} is not a number"),
                    )
                })?;
                if n == 0 || n > 256 {
                    return Err(bad("--workers (OUTRIGGER_WORKERS)", "must be 1..=256"));
                }
                n
            }
            None => std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(2),
        };

        let header_read_timeout = nonzero(
            "--header-read-timeout (OUTRIGGER_HEADER_READ_TIMEOUT)",
            dur(
                "--header-read-timeout (OUTRIGGER_HEADER_READ_TIMEOUT)",
                &cli.header_read_timeout,
            )?,
        )?;
        let connect_timeout = nonzero(
            "--connect-timeout (OUTRIGGER_CONNECT_TIMEOUT)",
            dur(
                "--connect-timeout (OUTRIGGER_CONNECT_TIMEOUT)",
                &cli.connect_timeout,
            )?,
        )?;
        let request_timeout = Some(dur(
            "--request-timeout (OUTRIGGER_REQUEST_TIMEOUT)",
            &cli.request_timeout,
        )?)
        .filter(|d| !d.is_zero());
        let idle_timeout = nonzero(
            "--idle-timeout (OUTRIGGER_IDLE_TIMEOUT)",
            dur("--idle-timeout (OUTRIGGER_IDLE_TIMEOUT)", &cli.idle_timeout)?,
        )?;
        let park_after = Some(dur("--park-after (OUTRIGGER_PARK_AFTER)", &cli.park_after)?)
            .filter(|d| !d.is_zero());

        let size = |setting: &str, s: &str| parse_size(s).map_err(|m| bad(setting, m));
        let max_header_bytes = size(
            "--max-header-bytes (OUTRIGGER_MAX_HEADER_BYTES)",
            &cli.max_header_bytes,
        )?;
        if !(1024..=(1 << 20)).contains(&max_header_bytes) {
            return Err(bad(
                "--max-header-bytes (OUTRIGGER_MAX_HEADER_BYTES)",
                "must be between 1KiB and 1MiB",
            ));
        }
        let max_headers: usize = cli.max_headers.trim().parse().map_err(|_| {
            bad(
                "--max-headers (OUTRIGGER_MAX_HEADERS)",
                format!("{:?} is not a number", cli.max_headers),
            )
        })?;
        if !(1..=10_000).contains(&max_headers) {
            return Err(bad(
                "--max-headers (OUTRIGGER_MAX_HEADERS)",
                "must be 1..=10000",
            ));
        }
        let max_body_bytes = Some(size(
            "--max-body-bytes (OUTRIGGER_MAX_BODY_BYTES)",
            &cli.max_body_bytes,
        )?)
        .filter(|n| *n > 0);

        let attempts: u32 = cli.retry_attempts.trim().parse().map_err(|_| {
            bad(
                "--retry-attempts (OUTRIGGER_RETRY_ATTEMPTS)",
                format!("{:?} is not a number", cli.retry_attempts),
            )
        })?;
        if attempts > 10 {
            return Err(bad(
                "--retry-attempts (OUTRIGGER_RETRY_ATTEMPTS)",
                "must be 0..=10",
            ));
        }
        let max_body = size(
            "--retry-max-body (OUTRIGGER_RETRY_MAX_BODY)",
            &cli.retry_max_body,
        )?;
        if max_body > 16 << 20 {
            return Err(bad(
                "--retry-max-body (OUTRIGGER_RETRY_MAX_BODY)",
                "must be at most 16MiB",
            ));
        }
        let budget_ratio: f32 = cli.retry_budget_ratio.trim().parse().map_err(|_| {
            bad(
                "--retry-budget-ratio (OUTRIGGER_RETRY_BUDGET_RATIO)",
                format!("{:?} is not a number", cli.retry_budget_ratio),
            )
        })?;
        if !(0.0..=1000.0).contains(&budget_ratio) {
            return Err(bad(
                "--retry-budget-ratio (OUTRIGGER_RETRY_BUDGET_RATIO)",
                "must be between 0 and 1000",
            ));
        }
        let budget_min_per_sec: u32 =
            cli.retry_budget_min_per_sec.trim().parse().map_err(|_| {
                bad(
                    "--retry-budget-min-per-sec (OUTRIGGER_RETRY_BUDGET_MIN_PER_SEC)",
                    format!("{:?} is not a number", cli.retry_budget_min_per_sec),
                )
            })?;
        let backoff = dur(
            "--retry-backoff (OUTRIGGER_RETRY_BACKOFF)",
            &cli.retry_backoff,
        )?;

        let access_log = parse_bool("--access-log (OUTRIGGER_ACCESS_LOG)", &cli.access_log)?;
        if cli.log.trim().is_empty() {
            return Err(bad("--log (OUTRIGGER_LOG)", "must not be empty"));
        }

        Ok(Self {
            inbound,
            app,
            admin,
            tls,
            drain_delay,
            drain_timeout,
            workers,
            header_read_timeout,
            connect_timeout,
            request_timeout,
            idle_timeout,
            park_after,
            max_header_bytes: max_header_bytes as usize,
            max_headers,
            max_body_bytes,
            retry: RetryConfig {
                attempts,
                max_body: max_body as usize,
                budget_ratio,
                budget_min_per_sec,
                backoff,
            },
            access_log,
            log: cli.log.clone(),
            otel: otel_from(env)?,
        })
    }

    /// Parse flags from `args` (first item = program name) and validate with `env`.
    pub fn parse_from<I, T>(args: I, env: &dyn Strings) -> Result<Self, ParseOutcome>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(ParseOutcome::Clap)?;
        Self::from_cli(&cli, env).map_err(ParseOutcome::Invalid)
    }
}

/// Why [`Config::parse_from`] did not produce a config.
#[derive(Debug)]
pub enum ParseOutcome {
    /// clap handled it (help, version or a usage error).
    Clap(clap::Error),
    /// A value failed validation.
    Invalid(ConfigError),
}

fn otel_from(env: &dyn Strings) -> Result<Option<OtelConfig>, ConfigError> {
    let non_empty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    let endpoint = if let Some(e) = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        e
    } else if let Some(e) = non_empty("OTEL_EXPORTER_OTLP_ENDPOINT") {
        format!("{}/v1/traces", e.trim_end_matches('/'))
    } else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(bad(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{endpoint:?} must be an http:// or https:// URL"),
        ));
    }
    let per_signal = |generic: &'static str, traces: &'static str| {
        non_empty(traces)
            .map(|v| (traces, v))
            .or_else(|| non_empty(generic).map(|v| (generic, v)))
    };
    let certificate = match per_signal(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    ) {
        None => None,
        Some((key, path)) => {
            let pem = std::fs::read(path.trim())
                .map_err(|e| bad(key, format!("cannot read {path:?}: {e}")))?;
            if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
                return Err(bad(key, format!("{path:?} holds no PEM certificate")));
            }
            Some(std::path::PathBuf::from(path.trim()))
        }
    };
    let mut headers = Vec::new();
    if let Some((key, list)) = per_signal(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ) {
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(key, format!("{pair:?} is not key=value")))?;
            // Values are percent-encoded (W3C Baggage octets), e.g. `Bearer%20token`.
            let v = percent_decode(v.trim())
                .ok_or_else(|| bad(key, format!("{pair:?} has a bad percent-encoding")))?;
            let name = k.trim().to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(&v).is_err()
            {
                return Err(bad(key, format!("{pair:?} is not a valid HTTP header")));
            }
            headers.push((name, v));
        }
    }
    if let Some(p) = non_empty("OTEL_EXPORTER_OTLP_PROTOCOL")
        && p != "http/protobuf"
    {
        return Err(bad(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!("{p:?} is not supported (only http/protobuf)"),
        ));
    }
    let service_name = non_empty("OTEL_SERVICE_NAME").unwrap_or_else(|| "outrigger-proxy".into());
    let mut resource_attributes = Vec::new();
    if let Some(attrs) = non_empty("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in attrs.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                bad(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("{pair:?} is not key=value"),
                )
            })?;
            resource_attributes.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let ratio = || -> Result<f64, ConfigError> {
        match non_empty("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    bad(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{a:?} is not a ratio in [0, 1]"),
                    )
                }),
        }
    };
    let sampler = match non_empty("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") => Sampler::ParentAlwaysOn,
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()?),
        Some("parentbased_always_off") => Sampler::ParentAlwaysOff,
        Some("parentbased_traceidratio") => Sampler::ParentRatio(ratio()?),
        Some(other) => {
            return Err(bad(
                "OTEL_TRACES_SAMPLER",
                format!("{other:?} is not supported"),
            ));
        }
    };
    Ok(Some(OtelConfig {
        traces_endpoint: endpoint,
        service_name,
        resource_attributes,
        sampler,
        certificate,
        headers,
    }))
}

/// Decodes `%XX` escapes; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ParseOutcome> {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let mut argv = vec!["outrigger-proxy"];
        argv.extend_from_slice(args);
        Config::parse_from(argv, &env)
    }

    fn invalid(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
        match parse(args, env) {
            Err(ParseOutcome::Invalid(e)) => e,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[], &[]).unwrap();
        assert_eq!(c.inbound, "0.0.0.0:4143".parse().unwrap());
        assert_eq!(c.app, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.admin, "0.0.0.0:4191".parse().unwrap());
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(c.drain_timeout, Duration::from_secs(25));
        assert_eq!(c.retry.max_body, 64 * 1024);
        assert!((c.retry.budget_ratio - 0.2).abs() < f32::EPSILON);
        assert_eq!(c.retry.budget_min_per_sec, 10);
        assert!(c.access_log);
        assert!(c.otel.is_none());
        assert!(c.workers >= 1 && c.workers <= 2);
    }

    #[test]
    fn drain_derived_from_grace_period() {
        let c = parse(&[], &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "30")]).unwrap();
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(c.drain_timeout, Duration::from_secs(22));
        let c = parse(&[], &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "10s")]).unwrap();
        assert_eq!(c.drain_delay + c.drain_timeout, Duration::from_secs(9));
        assert_eq!(c.drain_delay, Duration::from_millis(2250));
        let c = parse(
            &["--drain-delay", "1s"],
            &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "120")],
        )
        .unwrap();
        assert_eq!(c.drain_delay, Duration::from_secs(1));
        assert_eq!(c.drain_timeout, Duration::from_secs(110));
        let e = invalid(&[], &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "1")]);
        assert_eq!(e.setting, "OUTRIGGER_TERMINATION_GRACE_PERIOD");
        // Exit (delay + timeout + at most 1 s of shutdown work) always happens before the grace
        // period ends.
        for g in 2..600 {
            let (d, t) = derive_drain(Duration::from_secs(g)).unwrap();
            assert!(
                d + t + Duration::from_secs(1) <= Duration::from_secs(g),
                "grace {g}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert!(invalid(&["--app", "nope"], &[]).setting.contains("--app"));
        assert!(
            invalid(&["--drain-delay", "5 parsecs"], &[])
                .setting
                .contains("OUTRIGGER_DRAIN_DELAY")
        );
        assert!(
            invalid(&["--tls-cert", "/x"], &[])
                .setting
                .contains("--tls-key")
        );
        assert!(
            invalid(
                &["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"],
                &[]
            )
            .setting
            .contains("--tls-cert")
        );
        assert!(
            invalid(&["--workers", "0"], &[])
                .setting
                .contains("--workers")
        );
        assert!(
            invalid(&["--access-log", "maybe"], &[])
                .setting
                .contains("access-log")
        );
        assert!(
            invalid(&["--max-body-bytes", "12XB"], &[])
                .setting
                .contains("max-body-bytes")
        );
        assert_eq!(
            invalid(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://x:4317")]).setting,
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        );
        assert_eq!(
            invalid(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:4318"),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")
                ]
            )
            .setting,
            "OTEL_EXPORTER_OTLP_CERTIFICATE"
        );
        assert_eq!(
            invalid(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization")
                ]
            )
            .setting,
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        );
        assert_eq!(
            invalid(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz")
                ]
            )
            .setting,
            "OTEL_EXPORTER_OTLP_HEADERS"
        );
        assert_eq!(
            invalid(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                    ("OTEL_TRACES_SAMPLER", "sometimes")
                ]
            )
            .setting,
            "OTEL_TRACES_SAMPLER"
        );
    }

    #[test]
    fn otel_https_endpoint_and_headers() {
        let c = parse(
            &[],
            &[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example:4318",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization=Bearer%20t0k,x-scope-orgid=team-a",
                ),
            ],
        )
        .unwrap();
        let o = c.otel.unwrap();
        assert_eq!(
            o.traces_endpoint,
            "https://collector.example:4318/v1/traces"
        );
        assert_eq!(
            o.headers,
            vec![
                ("authorization".to_owned(), "Bearer t0k".to_owned()),
                ("x-scope-orgid".to_owned(), "team-a".to_owned())
            ]
        );
        assert!(o.certificate.is_none());
    }

    #[test]
    fn otel_endpoint_gets_signal_path() {
        let c = parse(
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
                ("OTEL_RESOURCE_ATTRIBUTES", "a=b, c=d"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ],
        )
        .unwrap();
        let o = c.otel.unwrap();
        assert_eq!(o.traces_endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(o.service_name, "outrigger-proxy");
        assert_eq!(o.resource_attributes.len(), 2);
        assert_eq!(o.sampler, Sampler::ParentRatio(0.5));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1.5MiB").is_err());
    }
}
