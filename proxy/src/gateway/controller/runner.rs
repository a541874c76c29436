//! The controller's main loop: starts the watches and the election, rebuilds and publishes
//! the table on every (debounced) change, and feeds the status writer and the Service manager.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use tokio::sync::{Notify, watch};

use super::{Options, leader, services, status, translate};
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
    let namespace = options
        .namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| options.lease_namespace.clone());
    let settings = services::Settings::new(namespace, &options);
    tracing::info!(namespace = %settings.namespace, "gateway controller: Gateways' Services live here");
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
    let manager = tokio::spawn(manage_services(
        client.clone(),
        settings.namespace.clone(),
        desired_rx.clone(),
        leader_rx.clone(),
        stopped(),
    ));
    let writer = tokio::spawn(write_statuses(client, desired_rx, leader_rx, stopped()));

    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = stores.ready() => {}
        () = &mut shutdown => {
            stores.stop();
            let _ = stop_tx.send(true);
            let _ = tokio::join!(election, writer, manager);
            return;
        }
    }
    tracing::info!("gateway controller: initial lists done, serving");
    let mut last = String::new();
    loop {
        let snapshot = stores.snapshot(&options.controller_name, &settings);
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
    let _ = tokio::join!(election, writer, manager);
}

type Desired = Option<Arc<(translate::Snapshot, translate::Statuses)>>;

/// Write the latest desired statuses whenever they change or leadership is gained; retry
/// failed writes after a pause.
async fn write_statuses(
    client: kube::Client,
    desired: watch::Receiver<Desired>,
    leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let leading = leader.clone();
    on_leader(desired, leader, shutdown, |current| {
        let (client, leading) = (&client, &leading);
        async move {
            let (snapshot, statuses) = &*current;
            status::write(client, snapshot, statuses, &|| *leading.borrow()).await
        }
    })
    .await;
}

/// Create, update and delete the Gateways' Services (leader only) whenever the desired ones
/// change or leadership is gained; retry after a pause when a write failed.
async fn manage_services(
    client: kube::Client,
    namespace: String,
    desired: watch::Receiver<Desired>,
    leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let api: kube::Api<Service> = kube::Api::namespaced(client, &namespace);
    on_leader(desired, leader, shutdown, |current| {
        let (api, namespace) = (&api, &namespace);
        async move {
            let (snapshot, statuses) = &*current;
            sync_services(api, namespace, snapshot, statuses).await
        }
    })
    .await;
}

/// The leader-only write loop the status writer and the Service manager share: `pass` runs with
/// the latest desired state whenever it changes or leadership is gained, and again after
/// [`STATUS_RETRY`] while it reports failed writes; a replica that is not the leader does nothing.
async fn on_leader<F, Fut>(
    mut desired: watch::Receiver<Desired>,
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    mut pass: F,
) where
    F: FnMut(Arc<(translate::Snapshot, translate::Statuses)>) -> Fut,
    Fut: Future<Output = usize>,
{
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
        retry = pass(current).await > 0;
    }
}

/// One pass of [`manage_services`]; returns the number of failed writes.
async fn sync_services(
    api: &kube::Api<Service>,
    namespace: &str,
    snapshot: &translate::Snapshot,
    statuses: &translate::Statuses,
) -> usize {
    let existing: BTreeMap<String, &Service> = snapshot
        .services
        .iter()
        .filter(|s| services::is_managed(s, namespace))
        .filter_map(|s| Some((s.metadata.name.clone()?, &**s)))
        .collect();
    let mut failed = 0;
    let params = PatchParams::apply(status::FIELD_MANAGER).force();
    for want in &statuses.services {
        let Some(name) = want.metadata.name.as_deref() else {
            continue;
        };
        let have = existing.get(name);
        if have.is_some_and(|h| services::needs_recreate(h, want)) {
            tracing::info!(
                service = name,
                "gateway controller: recreating a Service for its new address"
            );
            if let Err(e) = api.delete(name, &DeleteParams::default()).await {
                tracing::warn!(service = name, error = %e, "gateway controller: deleting a Service failed");
                failed += 1;
                continue;
            }
        } else if have.is_some_and(|h| !services::needs_update(h, want)) {
            continue;
        }
        match api.patch(name, &params, &Patch::Apply(want)).await {
            Ok(_) => tracing::info!(service = name, "gateway controller: Service applied"),
            Err(e) => {
                tracing::warn!(service = name, error = %e, "gateway controller: applying a Service failed");
                failed += 1;
            }
        }
    }
    let wanted: BTreeSet<&str> = statuses
        .services
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .chain(statuses.keep_services.iter().map(String::as_str))
        .collect();
    for name in existing.keys().filter(|n| !wanted.contains(n.as_str())) {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(service = %name, "gateway controller: Service of a gone Gateway deleted");
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(service = %name, error = %e, "gateway controller: deleting a Service failed");
                failed += 1;
            }
        }
    }
    failed
}
