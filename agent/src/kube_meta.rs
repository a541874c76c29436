//! Pod metadata store, keyed by pod UID: the `app.kubernetes.io/name`/`app` label and the owner
//! workload. Filled by the Kubernetes watch when enabled; lookups simply miss otherwise (the
//! path already carries namespace, pod, UID and container, so shipping never waits for it).

use std::collections::HashMap;
use std::sync::RwLock;

/// What the agent keeps per pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub app: Option<String>,
    /// (kind, name) of the workload owning the pod (ReplicaSet resolved to its Deployment by
    /// the usual `<deployment>-<hash>` naming).
    pub owner: Option<(String, String)>,
    /// The pod was deleted from the API; kept until its files are fully read.
    pub deleted: bool,
}

/// Shared store.
#[derive(Debug, Default)]
pub struct MetaStore {
    pods: RwLock<HashMap<String, PodMeta>>,
}

impl MetaStore {
    pub fn app(&self, uid: &str) -> Option<String> {
        self.get(uid).and_then(|m| m.app)
    }

    pub fn owner(&self, uid: &str) -> Option<(String, String)> {
        self.get(uid).and_then(|m| m.owner)
    }

    pub fn workload(&self, uid: &str) -> Option<String> {
        self.owner(uid).map(|(_, n)| n)
    }

    pub fn get(&self, uid: &str) -> Option<PodMeta> {
        self.pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .cloned()
    }

    pub fn upsert(&self, uid: String, meta: PodMeta) {
        self.pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid, meta);
    }

    /// Marks a pod deleted (kept for its files).
    pub fn mark_deleted(&self, uid: &str) {
        if let Some(m) = self
            .pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(uid)
        {
            m.deleted = true;
        }
    }

    /// Drops deleted pods whose UID no longer has files being read.
    pub fn gc(&self, live_uids: &std::collections::HashSet<String>) {
        self.pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|uid, m| !m.deleted || live_uids.contains(uid));
    }

    /// UIDs currently known.
    pub fn uids(&self) -> Vec<String> {
        self.pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Number of deleted pods still kept for their files.
    pub fn deleted(&self) -> usize {
        self.pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|m| m.deleted)
            .count()
    }

    pub fn len(&self) -> usize {
        self.pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
