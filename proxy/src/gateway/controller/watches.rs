//! The controller's view of the API: one reflector per kind it reads, each feeding an in-memory
//! store and poking a [`Notify`] on every change so the rebuild loop can debounce them.
//!
//! Memory stays bounded by what the cluster holds: managed fields are dropped before objects
//! are stored, and only `kubernetes.io/tls` Secrets are watched. API errors are logged and the
//! watch retried with kube-runtime's default backoff; nothing here ends the process.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::services::Settings;
use super::translate::Snapshot;
use super::types::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};

/// The stores of every kind the translation reads.
#[derive(Clone)]
pub struct Stores {
    classes: Store<GatewayClass>,
    gateways: Store<Gateway>,
    routes: Store<HttpRoute>,
    grants: Store<ReferenceGrant>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    namespaces: Store<Namespace>,
    /// The watch tasks, aborted by [`Stores::stop`].
    tasks: Vec<tokio::task::AbortHandle>,
}

fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: Arc<Notify>,
    tasks: &mut Vec<tokio::task::AbortHandle>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).into_owned();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                // The backoff delays the next attempt; the store keeps the last good state.
                Err(e) => {
                    tracing::warn!(kind = %kind, error = %e, "gateway controller: watch failed, retrying");
                }
            }
        }
    });
    tasks.push(task.abort_handle());
    reader
}

async fn ready_now<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    tokio::time::timeout(Duration::from_millis(1), store.wait_until_ready())
        .await
        .is_ok_and(|r| r.is_ok())
}

impl Stores {
    /// Start a watch per kind; `notify` is poked on every change.
    pub fn start(client: &Client, notify: &Arc<Notify>) -> Self {
        let all = watcher::Config::default();
        let tls = all.clone().fields("type=kubernetes.io/tls");
        let mut tasks = Vec::new();
        let t = &mut tasks;
        Self {
            classes: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            gateways: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            routes: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            grants: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            services: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            slices: spawn_watch(Api::all(client.clone()), all.clone(), notify.clone(), t),
            secrets: spawn_watch(Api::all(client.clone()), tls, notify.clone(), t),
            namespaces: spawn_watch(Api::all(client.clone()), all, notify.clone(), t),
            tasks,
        }
    }

    /// Stop every watch.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Wait until every store has its initial list, so that the first table is not built from
    /// half the cluster (routes without their Services would answer 500). Logs the kinds still
    /// missing every 10 s (a CRD that is not installed keeps its watch from ever listing).
    pub async fn ready(&self) {
        let all = async {
            let _ = tokio::join!(
                self.classes.wait_until_ready(),
                self.gateways.wait_until_ready(),
                self.routes.wait_until_ready(),
                self.grants.wait_until_ready(),
                self.services.wait_until_ready(),
                self.slices.wait_until_ready(),
                self.secrets.wait_until_ready(),
                self.namespaces.wait_until_ready(),
            );
        };
        let mut all = std::pin::pin!(all);
        while tokio::time::timeout(Duration::from_secs(10), &mut all)
            .await
            .is_err()
        {
            let pending = [
                ("GatewayClass", ready_now(&self.classes).await),
                ("Gateway", ready_now(&self.gateways).await),
                ("HTTPRoute", ready_now(&self.routes).await),
                ("ReferenceGrant", ready_now(&self.grants).await),
                ("Service", ready_now(&self.services).await),
                ("EndpointSlice", ready_now(&self.slices).await),
                ("Secret", ready_now(&self.secrets).await),
                ("Namespace", ready_now(&self.namespaces).await),
            ]
            .into_iter()
            .filter_map(|(kind, ready)| (!ready).then_some(kind))
            .collect::<Vec<_>>();
            tracing::warn!(kinds = ?pending, "gateway controller: still waiting for the initial list");
        }
    }

    /// The current objects; `settings` say where the Gateways' Services are.
    pub fn snapshot(&self, controller_name: &str, settings: &Settings) -> Snapshot {
        Snapshot {
            controller_name: controller_name.to_owned(),
            gateway_classes: self.classes.state(),
            gateways: self.gateways.state(),
            routes: self.routes.state(),
            grants: self.grants.state(),
            services: self.services.state(),
            slices: self.slices.state(),
            secrets: self.secrets.state(),
            namespaces: self.namespaces.state(),
            service_settings: settings.clone(),
        }
    }
}
