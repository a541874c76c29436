//! Configuration: command-line flags (each with an env-var twin), validation and derived defaults.
//!
//! clap parses every flag into its type with the shared parsers of `outrigger-daemon` (one
//! duration, size, boolean and address syntax for all Outrigger binaries) and checks ranges, so a
//! bad value exits 64 with one line naming it before any port is bound. [`Config::from_cli`] keeps
//! only the rules that span several settings, and the settings that are not flags:
//! `OUTRIGGER_TERMINATION_GRACE_PERIOD` and the `OTEL_*` variables ([`crate::otel`]), read through
//! the [`Strings`] trait so tests can supply values without touching the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use outrigger_daemon::cli::{self as parse, ValueError};

mod common;

pub use self::common::CommonArgs;
pub use crate::otel::OtelConfig;
pub use outrigger_daemon::{ConfigError, EX_USAGE};

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

pub(crate) fn bad(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(setting, message)
}

const AFTER_HELP: &str = "\
Other environment variables:
  OUTRIGGER_TERMINATION_GRACE_PERIOD  Pod terminationGracePeriodSeconds (e.g. 30, or a duration like
                                      30s). When set,
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
exit 0). Exit status 64 means bad configuration.

Drain endpoint: with --drain-token (OUTRIGGER_PROXY_DRAIN_TOKEN) set, GET /drain on the admin port
with the header X-Outrigger-Drain-Token: <token> starts the same drain as SIGTERM and answers 200
once the drain delay is over (idempotent: later calls wait the same way or answer at once). The
proxy then stays up, without accepting, until SIGTERM. A missing or wrong token gets 403; without
a token configured /drain is 404. Meant for the app container's preStop hook, which the kubelet
runs before it stops the app (a native sidecar's own SIGTERM comes only after the app exited).";

/// outrigger-proxy: the Outrigger sidecar data plane.
///
/// Every flag can also be set through the environment variable shown next to it. Durations take a
/// unit: `ns`, `us`, `ms`, `s`, `m`, `h` or `d`, combinable and fractional (`250ms`, `1.5s`,
/// `1m30s`; `0` alone needs none). Sizes accept `KiB`/`MiB`/`GiB` suffixes (a bare number means
/// bytes). Booleans: true/false, 1/0, yes/no, on/off.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "outrigger-proxy", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Address clients connect to.
    #[arg(long, env = "OUTRIGGER_INBOUND", default_value = "0.0.0.0:4143", value_parser = parse::socket_addr)]
    pub inbound: SocketAddr,
    /// Address of the local app the proxy forwards to (HTTP/1.1, pooled keep-alive).
    #[arg(long, env = "OUTRIGGER_APP", default_value = "127.0.0.1:8080", value_parser = parse::socket_addr)]
    pub app: SocketAddr,
    /// Admin listener: GET /live, GET /ready, GET /metrics.
    #[arg(long, env = "OUTRIGGER_ADMIN", default_value = "0.0.0.0:4191", value_parser = parse::socket_addr)]
    pub admin: SocketAddr,
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
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Token the admin port's GET /drain must carry in the X-Outrigger-Drain-Token header
    /// (16..=256 visible ASCII characters, compared in constant time). Unset: /drain answers 404.
    /// Prefer the environment variable: a flag is visible in the process list.
    #[arg(long, env = "OUTRIGGER_PROXY_DRAIN_TOKEN", hide_env_values = true, value_parser = drain_token)]
    pub drain_token: Option<DrainToken>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The modes besides the default one (the sidecar, which takes the top-level flags).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run as the cluster's ingress gateway (Gateway API); see docs/gateway.md.
    Gateway(Box<crate::gateway::config::GatewayArgs>),
}

/// The secret `GET /drain` must present. Its `Debug` never shows the value, so a logged
/// configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct DrainToken(String);

impl DrainToken {
    /// The token's bytes (for the constant-time comparison).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for DrainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DrainToken(<redacted>)")
    }
}

/// Length bounds of a drain token: short tokens can be guessed, and every character must be
/// valid in an HTTP header value as sent by the kubelet (no spaces, visible ASCII).
const DRAIN_TOKEN_LEN: std::ops::RangeInclusive<usize> = 16..=256;

fn drain_token(s: &str) -> Result<DrainToken, ValueError> {
    if !DRAIN_TOKEN_LEN.contains(&s.len()) {
        return Err(ValueError::new(format!(
            "must be {} to {} characters long (got {})",
            DRAIN_TOKEN_LEN.start(),
            DRAIN_TOKEN_LEN.end(),
            s.len()
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValueError::new(
            "must be visible ASCII characters only (no spaces or control characters)",
        ));
    }
    Ok(DrainToken(s.to_owned()))
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

/// The settings [`Config::assemble`] takes from the mode (sidecar or gateway) rather than from
/// [`CommonArgs`].
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Inbound listener (the gateway binds the table's ports instead; only logged).
    pub inbound: SocketAddr,
    /// The app (the gateway has none: its pool stays unused).
    pub app: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Inbound TLS from files (the sidecar only).
    pub tls: Option<TlsConfig>,
    /// `GET /drain` token (the sidecar only).
    pub drain_token: Option<DrainToken>,
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
    /// Token for the admin's `GET /drain`; `None`: `/drain` is off (404).
    pub drain_token: Option<DrainToken>,
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

/// `OUTRIGGER_TERMINATION_GRACE_PERIOD`: whole seconds, as Kubernetes' `terminationGracePeriodSeconds`
/// (what the injector and the charts copy in), or a duration.
fn grace_period(s: &str) -> Result<Duration, ValueError> {
    match s.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse::duration(s),
    }
}

fn readable(setting: &str, path: &std::path::Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
}

impl Config {
    /// The rules that span several settings, plus the settings that are not flags, from `env`.
    pub fn from_cli(cli: Cli, env: &dyn Strings) -> Result<Self, ConfigError> {
        let setting = parse::setting::<Cli>;
        if cli.inbound.port() != 0 && cli.inbound == cli.admin {
            return Err(bad(&setting("admin"), "must differ from --inbound"));
        }
        let tls = match (cli.tls_cert, cli.tls_key) {
            (Some(cert), Some(key)) => {
                readable(&setting("tls_cert"), &cert)?;
                readable(&setting("tls_key"), &key)?;
                if let Some(ca) = &cli.client_ca {
                    readable(&setting("client_ca"), ca)?;
                }
                Some(TlsConfig {
                    cert,
                    key,
                    client_ca: cli.client_ca,
                })
            }
            (Some(_), None) => {
                return Err(bad(&setting("tls_key"), "required when --tls-cert is set"));
            }
            (None, Some(_)) => {
                return Err(bad(&setting("tls_cert"), "required when --tls-key is set"));
            }
            (None, None) if cli.client_ca.is_some() => {
                return Err(bad(
                    &setting("client_ca"),
                    "requires --tls-cert and --tls-key",
                ));
            }
            (None, None) => None,
        };

        Self::assemble(
            Listeners {
                inbound: cli.inbound,
                app: cli.app,
                admin: cli.admin,
                tls,
                drain_token: cli.drain_token,
            },
            cli.common,
            env,
        )
    }

    /// A configuration from the per-mode `listeners` and the shared request-path settings, with
    /// the drain defaults and the settings that are not flags read from `env`.
    pub fn assemble(
        listeners: Listeners,
        cli: CommonArgs,
        env: &dyn Strings,
    ) -> Result<Self, ConfigError> {
        let grace_setting = "OUTRIGGER_TERMINATION_GRACE_PERIOD";
        let derived = match env.get(grace_setting).filter(|v| !v.trim().is_empty()) {
            Some(v) => {
                let grace =
                    grace_period(v.trim()).map_err(|e| bad(grace_setting, e.to_string()))?;
                Some(derive_drain(grace).ok_or_else(|| {
                    bad(grace_setting, format!("{v:?} is too short (at least 2s)"))
                })?)
            }
            None => None,
        };
        let (def_delay, def_timeout) =
            derived.unwrap_or((DEFAULT_DRAIN_DELAY, DEFAULT_DRAIN_TIMEOUT));

        Ok(Self {
            inbound: listeners.inbound,
            app: listeners.app,
            admin: listeners.admin,
            tls: listeners.tls,
            drain_delay: cli.drain_delay.unwrap_or(def_delay),
            drain_timeout: cli.drain_timeout.unwrap_or(def_timeout),
            workers: cli.workers.map_or_else(
                || {
                    std::thread::available_parallelism()
                        .map_or(1, std::num::NonZero::get)
                        .min(2)
                },
                usize::from,
            ),
            header_read_timeout: cli.header_read_timeout,
            connect_timeout: cli.connect_timeout,
            request_timeout: Some(cli.request_timeout).filter(|d| !d.is_zero()),
            idle_timeout: cli.idle_timeout,
            max_header_bytes: cli.max_header_bytes as usize,
            max_headers: usize::from(cli.max_headers),
            max_body_bytes: Some(cli.max_body_bytes).filter(|n| *n > 0),
            retry: RetryConfig {
                attempts: cli.retry_attempts,
                max_body: cli.retry_max_body as usize,
                budget_ratio: cli.retry_budget_ratio,
                budget_min_per_sec: cli.retry_budget_min_per_sec,
                backoff: cli.retry_backoff,
            },
            access_log: cli.access_log,
            drain_token: listeners.drain_token,
            log: cli.log,
            otel: crate::otel::from_env(env)?,
        })
    }

    /// Parse flags from `args` (first item = program name) and validate with `env`.
    pub fn parse_from<I, T>(args: I, env: &dyn Strings) -> Result<Self, ParseOutcome>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = parse::try_parse_from::<Cli, _, _>(args).map_err(ParseOutcome::Clap)?;
        Self::from_cli(cli, env).map_err(ParseOutcome::Invalid)
    }
}

/// What the command line asks for: the sidecar (no subcommand) or `gateway`.
#[derive(Debug)]
pub enum Mode {
    /// `outrigger-proxy [flags]`.
    Sidecar(Box<Config>),
    /// `outrigger-proxy gateway [flags]`.
    Gateway(Box<crate::gateway::config::GatewayConfig>),
}

impl Mode {
    /// Parse `args` (first item = program name) into the mode they ask for, validated with `env`.
    pub fn parse_from<I, T>(args: I, env: &dyn Strings) -> Result<Self, ParseOutcome>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cli = parse::try_parse_from::<Cli, _, _>(args).map_err(ParseOutcome::Clap)?;
        match cli.command.take() {
            Some(Command::Gateway(args)) => {
                crate::gateway::config::GatewayConfig::from_args(*args, env)
                    .map(|g| Self::Gateway(Box::new(g)))
                    .map_err(ParseOutcome::Invalid)
            }
            None => Config::from_cli(cli, env)
                .map(|c| Self::Sidecar(Box::new(c)))
                .map_err(ParseOutcome::Invalid),
        }
    }
}

/// Why [`Config::parse_from`] did not produce a config.
#[derive(Debug)]
pub enum ParseOutcome {
    /// clap handled it (help, version, or a flag value refused with its one usage line).
    Clap(parse::Outcome),
    /// Settings that are fine alone but not together, or a bad non-flag setting.
    Invalid(ConfigError),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ParseOutcome> {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let mut argv = vec!["outrigger-proxy"];
        argv.extend_from_slice(args);
        Config::parse_from(argv, &env)
    }

    /// The setting a refused configuration names (the usage line for a flag value).
    pub(crate) fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
        match parse(args, env) {
            Err(ParseOutcome::Invalid(e)) => e.setting,
            Err(ParseOutcome::Clap(parse::Outcome::Invalid(line))) => line,
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
        assert!(c.drain_token.is_none());
        assert!(c.workers >= 1 && c.workers <= 2);
    }

    #[test]
    fn the_drain_token_comes_from_the_environment_and_never_shows() {
        let token = "0123456789abcdef-token";
        // clap reads OUTRIGGER_PROXY_DRAIN_TOKEN from the process environment itself (the CLI
        // test covers it); the flag goes through the same parser.
        let c = parse(&["--drain-token", token], &[]).unwrap();
        assert_eq!(c.drain_token.as_ref().unwrap().as_bytes(), token.as_bytes());
        assert!(!format!("{c:?}").contains(token));
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
        assert_eq!(
            refused(&[], &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "1")]),
            "OUTRIGGER_TERMINATION_GRACE_PERIOD"
        );
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
        assert!(refused(&["--app", "nope"], &[]).contains("--app"));
        assert!(refused(&["--drain-delay", "5 parsecs"], &[]).contains("OUTRIGGER_DRAIN_DELAY"));
        assert!(refused(&["--tls-cert", "/x"], &[]).contains("--tls-key"));
        assert!(
            refused(
                &["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"],
                &[]
            )
            .contains("--tls-cert")
        );
        assert!(refused(&["--workers", "0"], &[]).contains("--workers"));
        assert!(refused(&["--access-log", "maybe"], &[]).contains("access-log"));
        assert!(refused(&["--max-body-bytes", "12XB"], &[]).contains("max-body-bytes"));
        assert!(refused(&["--max-header-bytes", "2MiB"], &[]).contains("max-header-bytes"));
        assert!(refused(&["--retry-attempts", "11"], &[]).contains("retry-attempts"));
        assert!(refused(&["--retry-budget-ratio=-1"], &[]).contains("retry-budget-ratio"));
        assert!(refused(&["--idle-timeout", "0s"], &[]).contains("idle-timeout"));
        assert!(refused(&["--log", "a=b=c"], &[]).contains("OUTRIGGER_LOG"));
        assert!(refused(&["--drain-token", "short"], &[]).contains("drain-token"));
        assert!(
            refused(&["--drain-token", "with space 0123456789"], &[]).contains("visible ASCII")
        );
        assert!(
            refused(&["--admin", "127.0.0.1:9", "--inbound", "127.0.0.1:9"], &[])
                .contains("--admin")
        );
    }

    #[test]
    fn flags_take_the_shared_syntax() {
        let c = parse(
            &[
                "--drain-timeout",
                "1m30s",
                "--park-after",
                "0",
                "--request-timeout",
                "0s",
                "--max-body-bytes",
                "0",
                "--access-log",
                "off",
                "--retry-backoff",
                "1.5s",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.drain_timeout, Duration::from_secs(90));
        assert_eq!(c.request_timeout, None);
        assert_eq!(c.max_body_bytes, None);
        assert!(!c.access_log);
        assert_eq!(c.retry.backoff, Duration::from_millis(1500));
        // A bare number is not a duration: seconds or milliseconds would be a guess.
        assert!(refused(&["--drain-delay", "30"], &[]).contains("no unit"));
    }
}
