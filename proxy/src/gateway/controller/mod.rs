//! The Gateway API controller: watches the API, builds the [`Table`], writes status.
//!
//! - [`types`]: serde types of the Gateway API kinds;
//! - [`translate`]: the pure translation from objects to table and statuses;
//! - [`watches`]: reflectors for every kind read;
//! - [`leader`]: Lease-based leader election;
//! - [`status`]: the status writer (leader only).
//!
//! Every replica watches, builds and publishes the table (all of them serve traffic); only the
//! elected leader writes status.

pub mod leader;
pub mod status;
pub mod translate;
pub mod types;
pub mod watches;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, watch};

use super::table::Table;

/// Controller settings (flattened into `outrigger-proxy gateway`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// GatewayClass `spec.controllerName` this gateway implements.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_CONTROLLER_NAME",
        default_value = "outrigger.dev/gateway-controller"
    )]
    pub controller_name: String,
    /// `namespace/name` of the Service in front of the gateway pods: its load-balancer address
    /// (else its ClusterIP) is written to each Gateway's `status.addresses`.
    #[arg(long, env = "OUTRIGGER_GATEWAY_SERVICE")]
    pub service: Option<String>,
    /// Namespace of the Lease used for leader election (only the leader writes status).
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_LEASE_NAMESPACE",
        default_value = "outrigger-system"
    )]
    pub lease_namespace: String,
    /// Name of that Lease.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_LEASE_NAME",
        default_value = "outrigger-gateway"
    )]
    pub lease_name: String,
}

/// Debounce of the rebuild: a burst of changes (a `kubectl apply` of many objects, an
/// EndpointSlice churning through a rollout) gives one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Retry delay of failed status writes.
const STATUS_RETRY: Duration = Duration::from_secs(2);

/// Watch the API and publish a new table on every change until `shutdown` resolves.
pub async fn run(
    options: Options,
    tables: watch::Sender<Arc<Table>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("gateway controller: Kubernetes client")?;
    run_with_client(options, client, leader::identity(), tables, shutdown).await;
    Ok(())
}

/// [`run`] with a given client and leader-election identity (the integration test runs two
/// replicas in one process).
pub async fn run_with_client(
    options: Options,
    client: kube::Client,
    identity: String,
    tables: watch::Sender<Arc<Table>>,
    shutdown: impl Future<Output = ()>,
) {
    let notify = Arc::new(Notify::new());
    let stores = watches::Stores::start(&client, &notify);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let (leader_tx, leader_rx) = watch::channel(false);
    let election = leader::Election {
        namespace: options.lease_namespace.clone(),
        name: options.lease_name.clone(),
        identity,
    };
    let election = tokio::spawn(leader::run(client.clone(), election, leader_tx, stopped()));
    let (desired_tx, desired_rx) = watch::channel(None);
    let writer = tokio::spawn(write_statuses(client, desired_rx, leader_rx, stopped()));

    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = stores.ready() => {}
        () = &mut shutdown => {
            stores.stop();
            let _ = stop_tx.send(true);
            let _ = tokio::join!(election, writer);
            return;
        }
    }
    tracing::info!("gateway controller: initial lists done, serving");
    let mut last = String::new();
    loop {
        let snapshot = stores.snapshot(&options.controller_name, options.service.as_deref());
        let (table, statuses) = translate::translate(&snapshot);
        // The table holds regexes and keys, which have no equality; their debug form is a
        // faithful fingerprint (patterns, certificate bytes) and cheap next to a rebuild.
        let fingerprint = format!("{table:?}");
        if fingerprint != last {
            tracing::info!(
                ports = table.ports.len(),
                backends = table.endpoints.len(),
                "gateway controller: publishing a new table"
            );
            tables.send_replace(Arc::new(table));
            last = fingerprint;
        }
        desired_tx.send_replace(Some(Arc::new((snapshot, statuses))));
        tokio::select! {
            () = notify.notified() => {}
            () = &mut shutdown => break,
        }
        tokio::select! {
            () = tokio::time::sleep(DEBOUNCE) => {}
            () = &mut shutdown => break,
        }
    }
    stores.stop();
    let _ = stop_tx.send(true);
    let _ = tokio::join!(election, writer);
}

type Desired = Option<Arc<(translate::Snapshot, translate::Statuses)>>;

/// Write the latest desired statuses whenever they change or leadership is gained; retry
/// failed writes after a pause.
async fn write_statuses(
    client: kube::Client,
    mut desired: watch::Receiver<Desired>,
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut retry = false;
    loop {
        tokio::select! {
            r = desired.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            () = tokio::time::sleep(STATUS_RETRY), if retry => {}
            () = &mut shutdown => return,
        }
        if !*leader.borrow_and_update() {
            retry = false;
            continue;
        }
        let Some(current) = desired.borrow_and_update().clone() else {
            continue;
        };
        let (snapshot, statuses) = &*current;
        retry = status::write(&client, snapshot, statuses).await > 0;
    }
}
