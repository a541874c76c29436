//! outrigger-proxy: the Outrigger sidecar data plane.
//!
//! [`run`] binds the inbound and admin listeners, serves until the shutdown future resolves
//! (SIGTERM in the binary) or the admin's `GET /drain` asks for it, then drains: `/ready` → 503
//! at once, keep serving for the drain delay, close the listener, shut connections down
//! gracefully, and force the rest after the drain timeout. A drain `/drain` started does not end
//! the process: it waits for the shutdown signal, because a native sidecar that exits while its
//! pod's app still runs would be restarted (and the admin port keeps answering probes and
//! scrapes meanwhile). Everything else lives in one module per concern.

pub mod admin;
pub mod body;
pub mod chunked;
pub mod coalesce;
pub mod config;
pub mod conn;
pub mod deadline;
pub mod drain;
pub mod forward;
pub mod gateway;
pub mod headers;
pub mod metrics;
pub mod otel;
pub mod retry;
pub mod server;
pub mod shared;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::telemetry::Tracing;

/// How often the certificate files are checked for changes.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// TLS state prepared (and validated) before any port is bound.
pub type TlsSetup = (Arc<rustls::ServerConfig>, Arc<tls::CertStore>);

/// Serve until `shutdown` resolves, then drain. Returns how the drain ended.
pub async fn run(
    config: Config,
    tls: Option<TlsSetup>,
    tracing: Option<Arc<Tracing>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<drain::Outcome> {
    let inbound = outrigger_daemon::start::bind("--inbound", config.inbound).await?;
    let admin = outrigger_daemon::start::bind("--admin", config.admin).await?;
    Ok(serve(inbound, admin, config, tls, tracing, shutdown).await)
}

/// [`run`] on listeners bound already (tests bind port 0 and read the addresses back);
/// `config.inbound` and `config.admin` are only logged.
pub async fn serve(
    inbound: TcpListener,
    admin: TcpListener,
    config: Config,
    tls: Option<TlsSetup>,
    tracing: Option<Arc<Tracing>>,
    shutdown: impl Future<Output = ()>,
) -> drain::Outcome {
    let (trigger, watcher) = drain::channel();
    let (drain_request, mut drain_requested) = drain::request_channel();
    let metrics = Arc::new(Metrics::with_drain(trigger.state()));
    let drain_delay = config.drain_delay;
    let drain_timeout = config.drain_timeout;
    let tls_files = config.tls.clone();
    let shared = Arc::new(Shared::new(
        config,
        metrics.clone(),
        tracing,
        trigger.state(),
    ));

    tokio::spawn(admin::serve(admin, shared.clone(), drain_request));
    let acceptor = match (tls, tls_files) {
        (Some((server_config, store)), Some(files)) => {
            tokio::spawn(tls::watch(
                files,
                store,
                metrics.clone(),
                TLS_RELOAD_INTERVAL,
            ));
            Some(tokio_rustls::TlsAcceptor::from(server_config))
        }
        _ => None,
    };
    ::tracing::info!(
        inbound = %shared.config.inbound,
        admin = %shared.config.admin,
        app = %shared.config.app,
        tls = acceptor.is_some(),
        "outrigger-proxy started"
    );
    let accept = tokio::spawn(server::serve(
        inbound,
        shared.clone(),
        forward::App,
        acceptor,
        watcher,
    ));

    let mut shutdown = std::pin::pin!(shutdown);
    let requested = tokio::select! {
        () = &mut shutdown => false,
        () = drain_requested.wait() => true,
    };
    ::tracing::info!(
        drain_delay_ms = drain_delay.as_millis() as u64,
        drain_timeout_ms = drain_timeout.as_millis() as u64,
        trigger = if requested { "GET /drain" } else { "signal" },
        "draining"
    );
    trigger.start_draining();
    tokio::time::sleep(drain_delay).await;
    let outcome = trigger.shutdown(drain_timeout).await;
    let _ = accept.await;
    ::tracing::info!(?outcome, "drain finished");
    if requested {
        // The app is still stopping (the kubelet stops the sidecar after it): stay up, not
        // accepting, until our own signal, so the kubelet does not restart an exited sidecar.
        ::tracing::info!("waiting for the shutdown signal");
        shutdown.await;
    }
    outcome
}
