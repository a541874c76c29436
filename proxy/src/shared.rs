//! State shared by every connection and the admin server: the configuration, metrics, the app
//! connection pool, the retry policy, tracing, and a reader of the drain phase.

use std::sync::Arc;

use crate::config::Config;
use crate::drain;
use crate::metrics::Metrics;
use crate::retry::Policy;
use crate::telemetry::Tracing;
use crate::upstream::Upstream;

/// Idle app connections kept for reuse; beyond this the oldest is closed.
const MAX_IDLE_APP_CONNECTIONS: usize = 1024;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Golden metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled keep-alive connections to the app.
    pub upstream: Arc<Upstream>,
    /// Retry budget and backoff.
    pub retry: Policy,
    /// OTLP tracing when configured.
    pub tracing: Option<Arc<Tracing>>,
    /// The drain phase (read only; the drain trigger moves it).
    pub drain: drain::State,
}

impl Shared {
    /// Build the app connection pool and shared state (inside the runtime).
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        tracing: Option<Arc<Tracing>>,
        drain: drain::State,
    ) -> Self {
        let upstream = Upstream::new(
            config.app,
            config.connect_timeout,
            config.idle_timeout,
            MAX_IDLE_APP_CONNECTIONS,
        );
        Self {
            retry: Policy::new(&config.retry),
            config,
            metrics,
            upstream,
            tracing,
            drain,
        }
    }

    /// Whether SIGTERM was received.
    pub fn is_draining(&self) -> bool {
        self.drain.is_draining()
    }
}
