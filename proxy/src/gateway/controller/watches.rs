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

    /// The current objects; `service` (`namespace/name`) gives the Gateways' addresses.
    pub fn snapshot(&self, controller_name: &str, service: Option<&str>) -> Snapshot {
        let services = self.services.state();
        let addresses = service.map(|s| addresses(&services, s)).unwrap_or_default();
        Snapshot {
            controller_name: controller_name.to_owned(),
            gateway_classes: self.classes.state(),
            gateways: self.gateways.state(),
            routes: self.routes.state(),
            grants: self.grants.state(),
            services,
            slices: self.slices.state(),
            secrets: self.secrets.state(),
            namespaces: self.namespaces.state(),
            addresses,
        }
    }
}

/// The Service's load-balancer ingress addresses, else its ClusterIP(s).
pub fn addresses(services: &[Arc<Service>], service: &str) -> Vec<(String, String)> {
    let Some((ns, name)) = service.split_once('/') else {
        return Vec::new();
    };
    let Some(svc) = services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
    }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            out.push(("IPAddress".to_owned(), ip.clone()));
        } else if let Some(host) = &i.hostname {
            out.push(("Hostname".to_owned(), host.clone()));
        }
    }
    if out.is_empty() {
        let spec = svc.spec.as_ref();
        let ips = spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default();
        let ips = if ips.is_empty() {
            spec.and_then(|s| s.cluster_ip.clone())
                .into_iter()
                .collect()
        } else {
            ips
        };
        out.extend(
            ips.into_iter()
                .filter(|ip| !ip.is_empty() && ip != "None")
                .map(|ip| ("IPAddress".to_owned(), ip)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(v: &serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v.clone()).expect("service"))
    }

    #[test]
    fn addresses_prefer_the_load_balancer_then_the_cluster_ips() {
        let lb = service(
            &serde_json::json!({"metadata": {"namespace": "gw", "name": "lb"},
            "spec": {"clusterIP": "10.0.0.1"},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}}),
        );
        let dual = service(
            &serde_json::json!({"metadata": {"namespace": "gw", "name": "dual"},
            "spec": {"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.2", "fd00::2"]}}),
        );
        let headless = service(
            &serde_json::json!({"metadata": {"namespace": "gw", "name": "headless"},
            "spec": {"clusterIP": "None"}}),
        );
        let all = [lb, dual, headless];
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(t, a)| ((*t).to_owned(), (*a).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            addresses(&all, "gw/lb"),
            pairs(&[("IPAddress", "203.0.113.7"), ("Hostname", "lb.example.com")])
        );
        assert_eq!(
            addresses(&all, "gw/dual"),
            pairs(&[("IPAddress", "10.0.0.2"), ("IPAddress", "fd00::2")])
        );
        assert!(addresses(&all, "gw/headless").is_empty());
        assert!(addresses(&all, "gw/missing").is_empty());
        assert!(addresses(&all, "no-slash").is_empty());
    }
}
