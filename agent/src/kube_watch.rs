//! Node-scoped pod watch (kube-rs `watcher` with field selector `spec.nodeName=<node>`, list
//! served from the API server's watch cache with `resourceVersion=0`) feeding the metadata store.
//! Deleted pods are only marked; the reader drops them once their files are fully read. Needs
//! RBAC `get/list/watch` on `pods` only.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};

use crate::kube_meta::{MetaStore, PodMeta};

/// Metadata the agent keeps from a pod object.
pub fn pod_meta(pod: &Pod) -> Option<(String, PodMeta)> {
    let uid = pod.metadata.uid.clone()?;
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let app = labels
        .get("app.kubernetes.io/name")
        .or_else(|| labels.get("app"))
        .cloned();
    let owner = pod.metadata.owner_references.as_ref().and_then(|refs| {
        let r = refs
            .iter()
            .find(|r| r.controller == Some(true))
            .or_else(|| refs.first())?;
        // A Deployment's pods are owned by ReplicaSet `<deployment>-<pod-template-hash>`.
        if r.kind == "ReplicaSet"
            && let Some(hash) = labels.get("pod-template-hash")
            && let Some(dep) = r.name.strip_suffix(&format!("-{hash}"))
        {
            return Some(("Deployment".to_owned(), dep.to_owned()));
        }
        Some((r.kind.clone(), r.name.clone()))
    });
    Some((
        uid,
        PodMeta {
            app,
            owner,
            deleted: false,
        },
    ))
}

/// Connects (in-cluster config or `KUBECONFIG`) and starts the watch in the background.
pub async fn spawn(node: &str, store: Arc<MetaStore>) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("kubernetes client: {e}"))?;
    let api: Api<Pod> = Api::all(client);
    let mut cfg = watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .any_semantic();
    // kube only sends resourceVersion=0 (served from the watch cache, sparing etcd on DaemonSet
    // rollouts) when no page size is set; the watch cache does not paginate anyway.
    cfg.page_size = None;
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
        let mut init_seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => init_seen.clear(),
                Ok(Event::InitApply(p)) => {
                    if let Some((uid, m)) = pod_meta(&p) {
                        init_seen.insert(uid.clone());
                        store.upsert(uid, m);
                    }
                }
                Ok(Event::InitDone) => {
                    // Pods gone while we were not watching: deleted (kept until drained).
                    for uid in store.uids() {
                        if !init_seen.contains(&uid) {
                            store.mark_deleted(&uid);
                        }
                    }
                    tracing::info!(pods = init_seen.len(), "pod metadata synced");
                }
                Ok(Event::Apply(p)) => {
                    if let Some((uid, m)) = pod_meta(&p) {
                        store.upsert(uid, m);
                    }
                }
                Ok(Event::Delete(p)) => {
                    if let Some(uid) = p.metadata.uid.as_deref() {
                        store.mark_deleted(uid);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pod watch error (retrying with backoff)"),
            }
        }
    });
    Ok(())
}
