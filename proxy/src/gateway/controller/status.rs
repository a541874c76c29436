//! Status writing (leader only): turns the translation's [`Statuses`] into merge patches of the
//! status subresource, sent only for objects whose status differs from what the watch last
//! saw. `lastTransitionTime` is kept while a condition's status stays the same, so rewriting
//! the same state is a no-op and the writer never fights itself; HTTPRoute entries of other
//! controllers are kept as they are.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::translate::{Cond, SUPPORTED_FEATURES, Snapshot, Statuses};
use super::types::{GROUP, Gateway, GatewayClass, HttpRoute, ParentRef};

/// Field manager of every patch.
pub const FIELD_MANAGER: &str = "outrigger-gateway";

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Conditions as the API writes them, keeping the transition time of unchanged ones.
pub fn conditions(
    desired: &[Cond],
    generation: Option<i64>,
    existing: Option<&Value>,
    now: &str,
) -> Value {
    let existing: &[Value] = existing
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let list: Vec<Value> = desired
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = existing
                .iter()
                .find(|e| e["type"] == c.type_ && e["status"] == status)
                .and_then(|e| e["lastTransitionTime"].as_str())
                .unwrap_or(now);
            let mut v = json!({
                "type": c.type_,
                "status": status,
                "reason": c.reason,
                "message": truncate(&c.message),
                "lastTransitionTime": since,
            });
            if let Some(g) = generation {
                v["observedGeneration"] = json!(g);
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// The API limits condition messages to 32768 bytes.
fn truncate(message: &str) -> &str {
    let mut end = message.len().min(32_000);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Whether every key of `desired` has the same value in `existing`.
fn same(desired: &Value, existing: Option<&Value>) -> bool {
    let (Some(desired), Some(existing)) =
        (desired.as_object(), existing.and_then(Value::as_object))
    else {
        return false;
    };
    desired.iter().all(|(k, v)| existing.get(k) == Some(v))
}

/// The desired statuses of everything, as (kind, namespace, name, status JSON) for the objects
/// whose current status differs. Pure, for the tests.
pub fn diff(
    snapshot: &Snapshot,
    statuses: &Statuses,
    now: &str,
) -> Vec<(&'static str, Option<String>, String, Value)> {
    let mut out = Vec::new();
    for c in &statuses.classes {
        let Some(obj) = snapshot
            .gateway_classes
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(&c.name))
        else {
            continue;
        };
        let old = obj.status.as_ref();
        let features: Vec<Value> = SUPPORTED_FEATURES
            .iter()
            .map(|f| json!({"name": f}))
            .collect();
        let status = json!({
            "conditions": conditions(&c.conditions, c.generation, old.and_then(|s| s.get("conditions")), now),
            "supportedFeatures": features,
        });
        if !same(&status, old) {
            out.push(("GatewayClass", None, c.name.clone(), status));
        }
    }
    for g in &statuses.gateways {
        let Some(obj) = snapshot.gateways.iter().find(|o| {
            o.metadata.namespace.as_deref() == Some(&g.namespace)
                && o.metadata.name.as_deref() == Some(&g.name)
        }) else {
            continue;
        };
        let old = obj.status.as_ref();
        let old_listeners: BTreeMap<&str, &Value> = old
            .and_then(|s| s.get("listeners"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| Some((l.get("name")?.as_str()?, l)))
            .collect();
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                let kinds: Vec<Value> = l
                    .supported_kinds
                    .iter()
                    .map(|k| json!({"group": GROUP, "kind": k}))
                    .collect();
                let old = old_listeners
                    .get(l.name.as_str())
                    .and_then(|o| o.get("conditions"));
                json!({
                    "name": l.name,
                    "supportedKinds": kinds,
                    "attachedRoutes": l.attached_routes,
                    "conditions": conditions(&l.conditions, g.generation, old, now),
                })
            })
            .collect();
        let addresses: Vec<Value> = g
            .addresses
            .iter()
            .map(|(t, v)| json!({"type": t, "value": v}))
            .collect();
        let status = json!({
            "addresses": addresses,
            "conditions": conditions(&g.conditions, g.generation, old.and_then(|s| s.get("conditions")), now),
            "listeners": listeners,
        });
        if !same(&status, old) {
            out.push(("Gateway", Some(g.namespace.clone()), g.name.clone(), status));
        }
    }
    // Every route that has, or should have, an entry of ours.
    for obj in &snapshot.routes {
        let (Some(ns), Some(name)) = (
            obj.metadata.namespace.as_deref(),
            obj.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let desired = statuses
            .routes
            .iter()
            .find(|r| r.namespace == ns && r.name == name);
        let old_parents: Vec<Value> = obj
            .status
            .as_ref()
            .and_then(|s| s.get("parents"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (ours_old, others): (Vec<Value>, Vec<Value>) = old_parents
            .into_iter()
            .partition(|p| p["controllerName"] == snapshot.controller_name.as_str());
        if desired.is_none() && ours_old.is_empty() {
            continue;
        }
        let ours: Vec<Value> = desired
            .into_iter()
            .flat_map(|d| d.parents.iter().map(move |p| (d, p)))
            .map(|(d, (parent, conds))| {
                let old = ours_old
                    .iter()
                    .find(|o| {
                        serde_json::from_value::<ParentRef>(o["parentRef"].clone())
                            .is_ok_and(|r| r == *parent)
                    })
                    .and_then(|o| o.get("conditions"));
                json!({
                    "parentRef": parent,
                    "controllerName": snapshot.controller_name,
                    "conditions": conditions(conds, d.generation, old, now),
                })
            })
            .collect();
        if ours == ours_old {
            continue;
        }
        let mut parents = others;
        parents.extend(ours);
        let mut status = json!({"parents": parents});
        // Optimistic concurrency: another controller may be writing its own entries.
        if let Some(rv) = &obj.metadata.resource_version {
            status["resourceVersion"] = json!(rv);
        }
        out.push(("HTTPRoute", Some(ns.to_owned()), name.to_owned(), status));
    }
    out
}

/// Write every status that differs, while `leading` says we still lead (leadership can be
/// lost in the middle of a long batch). Returns how many patches failed (the caller retries).
pub async fn write(
    client: &Client,
    snapshot: &Snapshot,
    statuses: &Statuses,
    leading: &(dyn Fn() -> bool + Sync),
) -> usize {
    let mut failed = 0;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for (kind, ns, name, mut status) in diff(snapshot, statuses, &now()) {
        if !leading() {
            break;
        }
        let rv = status
            .as_object_mut()
            .and_then(|s| s.remove("resourceVersion"));
        let mut body = json!({"status": status});
        if let Some(rv) = rv {
            body["metadata"] = json!({"resourceVersion": rv});
        }
        let patch = Patch::Merge(&body);
        let result = match (kind, ns.as_deref()) {
            ("GatewayClass", _) => Api::<GatewayClass>::all(client.clone())
                .patch_status(&name, &params, &patch)
                .await
                .map(drop),
            ("Gateway", Some(ns)) => Api::<Gateway>::namespaced(client.clone(), ns)
                .patch_status(&name, &params, &patch)
                .await
                .map(drop),
            (_, Some(ns)) => Api::<HttpRoute>::namespaced(client.clone(), ns)
                .patch_status(&name, &params, &patch)
                .await
                .map(drop),
            (_, None) => continue,
        };
        match result {
            Ok(()) => {
                tracing::debug!(kind, namespace = ?ns, name, "gateway controller: status written");
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(kind, namespace = ?ns, name, error = %e, "gateway controller: status write failed");
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests;
