//! The gateway's data plane: serves the routing table it receives through a `watch` channel
//! (from the controller, or once from `--routes-file`), on the sidecar's request path
//! ([`crate::forward`] with a [`router::PortRouter`]), connection handling, TLS, retry, drain and
//! metrics code.
//!
//! One module per concern: [`ports`] (binding and draining the table's ports), [`sni`]
//! (certificates by SNI), [`routing`] (host, virtual host and rule matching), [`filters`],
//! [`router`] (the request path's routing step and per-route metrics), [`served`] (what is
//! resolved once per table), [`balance`] (endpoint choice and ejection), [`metrics`] and
//! [`admin`].

pub mod admin;
pub mod balance;
pub mod filters;
pub mod metrics;
pub mod ports;
pub mod router;
pub mod routing;
pub mod served;
pub mod sni;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::drain::{self, Outcome};
use crate::gateway::config::{GatewayConfig, Source};
use crate::gateway::controller;
use crate::gateway::table::Table;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::telemetry::Tracing;

use self::balance::Balancer;
use self::metrics::GatewayMetrics;
use self::ports::Ports;
use self::router::State;

/// Bind the admin port, start the controller unless the table is static, and serve until
/// `shutdown` resolves (or the controller fails), then drain.
pub async fn run(
    config: GatewayConfig,
    tracing: Option<Arc<Tracing>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Outcome> {
    let admin = outrigger_daemon::start::bind("--admin", config.config.admin).await?;
    match config.source.clone() {
        Source::Static(table) => {
            let (tx, rx) = watch::channel(table);
            let outcome = serve(admin, config, rx, true, tracing, shutdown).await;
            drop(tx);
            Ok(outcome)
        }
        Source::Controller(options) => {
            let (tx, rx) = watch::channel(Arc::new(Table::default()));
            let (stop_tx, mut stop_rx) = watch::channel(false);
            let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
            let controller = tokio::spawn(async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                };
                let result = controller::run(options, tx, stop).await;
                let _ = ended_tx.send(());
                result
            });
            let stop = async move {
                tokio::select! {
                    () = shutdown => {}
                    _ = ended_rx => tracing::error!("the Gateway API controller stopped"),
                }
            };
            let outcome = serve(admin, config, rx, false, tracing, stop).await;
            let _ = stop_tx.send(true);
            controller
                .await
                .context("the Gateway API controller panicked")?
                .context("the Gateway API controller failed")?;
            Ok(outcome)
        }
    }
}

/// Serve the tables `tables` publishes on listeners bound as they come, with `admin` bound
/// already; `loaded`: the current table counts as loaded for `/ready` (a static one does; the
/// controller's empty initial one does not).
pub async fn serve(
    admin: TcpListener,
    config: GatewayConfig,
    mut tables: watch::Receiver<Arc<Table>>,
    loaded: bool,
    tracing: Option<Arc<Tracing>>,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let (trigger, _) = drain::channel();
    let mut metrics = Metrics::with_drain(trigger.state());
    let gateway_metrics = GatewayMetrics::register(&mut metrics);
    let metrics = Arc::new(metrics);
    let cfg = &config.config;
    let (delay, timeout) = (cfg.drain_delay, cfg.drain_timeout);
    let state = Arc::new(State::new(
        Balancer::new(config.balancing, cfg.connect_timeout, cfg.idle_timeout),
        gateway_metrics,
    ));
    let shared = Arc::new(Shared::new(
        config.config.clone(),
        metrics,
        tracing,
        trigger.state(),
    ));
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(admin::serve(
        admin,
        shared.clone(),
        state.clone(),
        ready.clone(),
    ));
    ::tracing::info!(admin = %cfg.admin, bind = %config.bind_address, "outrigger-proxy gateway started");

    let mut ports = Ports::new(config.bind_address, shared, state.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut loaded = loaded;
    loop {
        let table = tables.borrow_and_update().clone();
        state.install(table.clone());
        ports.apply(&table).await;
        ready.store(loaded, Ordering::Release);
        tokio::select! {
            changed = tables.changed() => {
                if changed.is_err() {
                    // No more tables: keep serving the last one until the shutdown.
                    (&mut shutdown).await;
                    break;
                }
                loaded = true;
            }
            () = &mut shutdown => break,
        }
    }
    ::tracing::info!(
        drain_delay_ms = delay.as_millis() as u64,
        drain_timeout_ms = timeout.as_millis() as u64,
        "draining"
    );
    trigger.start_draining();
    let outcome = ports.drain(delay, timeout).await;
    ::tracing::info!(?outcome, "drain finished");
    outcome
}
