//! The request-path flags both modes take (the sidecar's top level and `outrigger-proxy gateway`
//! flatten the same group, so both have the same flags and variables).

use std::time::Duration;

use clap::ArgAction;
use outrigger_daemon::cli::{self as parse, ValueError};

/// The request-path settings the sidecar and the gateway share (flattened into both).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// How long to keep accepting and serving after SIGTERM before closing the listener
    /// [default: derived from OUTRIGGER_TERMINATION_GRACE_PERIOD, else 5s].
    #[arg(long, env = "OUTRIGGER_DRAIN_DELAY", value_parser = parse::duration)]
    pub drain_delay: Option<Duration>,
    /// How long in-flight requests may run after the listener closes before connections are
    /// forcibly closed [default: derived from OUTRIGGER_TERMINATION_GRACE_PERIOD, else 25s].
    #[arg(long, env = "OUTRIGGER_DRAIN_TIMEOUT", value_parser = parse::duration)]
    pub drain_timeout: Option<Duration>,
    /// Worker threads, 1..=256 [default: available cores, at most 2]; 1 runs everything on one
    /// thread (tokio's current-thread scheduler).
    #[arg(long, env = "OUTRIGGER_WORKERS", value_parser = parse::workers)]
    pub workers: Option<u16>,
    /// Time a client has to send complete request headers (slowloris guard; answered with 408).
    #[arg(long, env = "OUTRIGGER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse::positive_duration)]
    pub header_read_timeout: Duration,
    /// Time to establish a TCP connection to the app (answered with 504 when exceeded).
    #[arg(long, env = "OUTRIGGER_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse::positive_duration)]
    pub connect_timeout: Duration,
    /// Time from receiving a request until the app's response headers, retries included
    /// (answered with 504 when exceeded). 0 disables.
    #[arg(long, env = "OUTRIGGER_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse::duration)]
    pub request_timeout: Duration,
    /// Idle keep-alive timeout for client connections (and pooled app connections).
    #[arg(long, env = "OUTRIGGER_IDLE_TIMEOUT", default_value = "60s", value_parser = parse::positive_duration)]
    pub idle_timeout: Duration,
    /// Accepted for compatibility; no effect: an idle HTTP/1 keep-alive connection holds no HTTP
    /// buffers from the moment it waits for its next request.
    #[arg(long, env = "OUTRIGGER_PARK_AFTER", default_value = "10ms", value_parser = parse::duration)]
    pub park_after: Duration,
    /// Maximum total size of request headers, 1KiB..=1MiB (answered with 431).
    #[arg(long, env = "OUTRIGGER_MAX_HEADER_BYTES", default_value = "16KiB", value_parser = parse::size_in(1024..=1 << 20))]
    pub max_header_bytes: u64,
    /// Maximum number of request headers, 1..=10000 (answered with 431).
    #[arg(long, env = "OUTRIGGER_MAX_HEADERS", default_value = "100", value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub max_headers: u16,
    /// Maximum request body size (answered with 413). 0 disables the cap.
    #[arg(long, env = "OUTRIGGER_MAX_BODY_BYTES", default_value = "10MiB", value_parser = parse::size)]
    pub max_body_bytes: u64,
    /// Maximum retries per request, 0..=10 (0 disables retries).
    #[arg(long, env = "OUTRIGGER_RETRY_ATTEMPTS", default_value = "2", value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retry_attempts: u32,
    /// Largest request body kept for replay, at most 16MiB; larger bodies are never retried.
    #[arg(long, env = "OUTRIGGER_RETRY_MAX_BODY", default_value = "64KiB", value_parser = parse::size_in(0..=16 << 20))]
    pub retry_max_body: u64,
    /// Retry budget: retries allowed as a fraction of requests (over a 10 s window), 0..=1000.
    #[arg(long, env = "OUTRIGGER_RETRY_BUDGET_RATIO", default_value = "0.2", value_parser = budget_ratio)]
    pub retry_budget_ratio: f32,
    /// Retry budget: retries per second always allowed on top of the ratio.
    #[arg(long, env = "OUTRIGGER_RETRY_BUDGET_MIN_PER_SEC", default_value = "10", value_parser = clap::value_parser!(u32))]
    pub retry_budget_min_per_sec: u32,
    /// Base retry backoff; attempt n waits a random time in [0, base * 2^n] (full jitter), capped
    /// at 1 s.
    #[arg(long, env = "OUTRIGGER_RETRY_BACKOFF", default_value = "25ms", value_parser = parse::duration)]
    pub retry_backoff: Duration,
    /// Write one JSON access-log line per request to stdout (true/false).
    #[arg(long, env = "OUTRIGGER_ACCESS_LOG", default_value = "true", value_parser = parse::bool, action = ArgAction::Set)]
    pub access_log: bool,
    /// Diagnostic log filter (tracing EnvFilter syntax); logs go to stderr as JSON.
    #[arg(long, env = "OUTRIGGER_LOG", default_value = "info", value_parser = parse::log_filter)]
    pub log: String,
}

fn budget_ratio(s: &str) -> Result<f32, ValueError> {
    s.parse::<f32>()
        .ok()
        .filter(|r| (0.0..=1000.0).contains(r))
        .ok_or_else(|| ValueError::new(format!("{s:?} is not a number between 0 and 1000")))
}
