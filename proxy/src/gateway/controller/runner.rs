//! The controller's main loop: starts the watches and the election, rebuilds and publishes
//! the table on every (debounced) change, and feeds the status writer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Options, leader, status, translate};
use crate::gateway::table::Table;

/// Debounce of the rebuild: a burst of changes (a `kubectl apply` of many objects, an
/// EndpointSlice churning through a rollout) gives one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Retry delay of failed status writes.
const STATUS_RETRY: Duration = Duration::from_secs(2);

/// [`run`](super::run) with a given client and leader-election identity (the integration test runs two
/// replicas in one process).
pub async fn run_with_client(
    options: Options,
    client: kube::Client,
    identity: String,
    tables: watch::Sender<Arc<Table>>,
    shutdown: impl Future<Output = ()>,
) {
    if let Some(service) = options.service.as_deref().filter(|s| !s.contains('/')) {
        tracing::warn!(
            service,
            "gateway controller: --service is not namespace/name; Gateways get no address"
        );
    }
    let notify = Arc::new(Notify::new());
    let stores = super::watches::Stores::start(&client, &notify);
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
        let leading = || *leader.borrow();
        retry = status::write(&client, snapshot, statuses, &leading).await > 0;
    }
}
