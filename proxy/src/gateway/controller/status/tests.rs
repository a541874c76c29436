//! Unit tests of the status diff: stable transition times, no write when nothing changed,
//! other controllers' route entries kept.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::gateway::controller::translate::{self, Cond, Snapshot};

const CTL: &str = "outrigger.dev/gateway-controller";

fn obj<T: serde::de::DeserializeOwned>(v: &Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v.clone()).expect("fixture deserializes"))
}

fn snapshot(route_status: &Value) -> Snapshot {
    Snapshot {
        controller_name: CTL.into(),
        gateway_classes: vec![obj(
            &json!({"metadata": {"name": "outrigger", "generation": 2}, "spec": {"controllerName": CTL}}),
        )],
        gateways: vec![obj(
            &json!({"metadata": {"namespace": "infra", "name": "gw", "generation": 4},
            "spec": {"gatewayClassName": "outrigger", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
        )],
        routes: vec![obj(
            &json!({"metadata": {"namespace": "apps", "name": "r", "generation": 7, "resourceVersion": "42"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}]}, "status": route_status}),
        )],
        ..Snapshot::default()
    }
}

#[test]
fn transition_time_is_kept_while_the_status_holds() {
    let old = json!([{"type": "Accepted", "status": "True", "reason": "Old", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                     {"type": "Programmed", "status": "True", "reason": "Programmed", "lastTransitionTime": "2020-01-01T00:00:00Z"}]);
    let desired = [
        Cond::new("Accepted", true, "Accepted", "ok"),
        Cond::new("Programmed", false, "Invalid", "no"),
    ];
    let got = conditions(&desired, Some(5), Some(&old), "2026-01-01T00:00:00Z");
    assert_eq!(got[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    assert_eq!(got[0]["reason"], "Accepted");
    assert_eq!(got[0]["observedGeneration"], 5);
    assert_eq!(got[1]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    assert_eq!(got[1]["status"], "False");
}

/// Store each diffed status into the snapshot, as the API server would after the patch.
fn apply(snapshot: &mut Snapshot, writes: Vec<(&'static str, Option<String>, String, Value)>) {
    for (kind, _, _, mut status) in writes {
        if let Some(s) = status.as_object_mut() {
            s.remove("resourceVersion");
        }
        match kind {
            "GatewayClass" => Arc::make_mut(&mut snapshot.gateway_classes[0]).status = Some(status),
            "Gateway" => Arc::make_mut(&mut snapshot.gateways[0]).status = Some(status),
            _ => Arc::make_mut(&mut snapshot.routes[0]).status = Some(status),
        }
    }
}

#[test]
fn nothing_is_written_twice() {
    let mut s = snapshot(&json!({}));
    let (_, statuses) = translate::translate(&translate::tests::served(&s));
    let writes = diff(&s, &statuses, "2026-01-01T00:00:00Z");
    let kinds: Vec<&str> = writes.iter().map(|w| w.0).collect();
    assert_eq!(kinds, ["GatewayClass", "Gateway", "HTTPRoute"]);
    let class = &writes[0].3;
    assert_eq!(class["supportedFeatures"][0], json!({"name": "Gateway"}));
    let gw = &writes[1].3;
    assert_eq!(
        gw["addresses"],
        json!([{"type": "IPAddress", "value": "10.96.0.1"}])
    );
    assert_eq!(gw["listeners"][0]["attachedRoutes"], 1);
    assert_eq!(gw["conditions"][0]["observedGeneration"], 4);
    assert_eq!(writes[2].3["resourceVersion"], "42");
    apply(&mut s, writes);
    let (_, statuses) = translate::translate(&translate::tests::served(&s));
    assert!(
        diff(&s, &statuses, "2026-02-02T00:00:00Z").is_empty(),
        "an unchanged state writes nothing"
    );

    // A new generation is a change.
    Arc::make_mut(&mut s.gateways[0]).metadata.generation = Some(5);
    let (_, statuses) = translate::translate(&translate::tests::served(&s));
    let writes = diff(&s, &statuses, "2026-02-02T00:00:00Z");
    assert_eq!(writes.len(), 1);
    assert_eq!(
        writes[0].3["conditions"][0]["lastTransitionTime"],
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn other_controllers_route_entries_are_kept_and_stale_ones_of_ours_removed() {
    let other = json!({"parentRef": {"name": "theirs"}, "controllerName": "example.com/other", "conditions": []});
    let stale = json!({"parentRef": {"name": "old-gw", "namespace": "infra"}, "controllerName": CTL, "conditions": []});
    let s = snapshot(&json!({"parents": [other, stale]}));
    let (_, statuses) = translate::translate(&translate::tests::served(&s));
    let writes = diff(&s, &statuses, "2026-01-01T00:00:00Z");
    let route = writes
        .iter()
        .find(|w| w.0 == "HTTPRoute")
        .expect("route write");
    let parents = route.3["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], other);
    assert_eq!(
        parents[1]["parentRef"],
        json!({"name": "gw", "namespace": "infra"})
    );
    assert_eq!(parents[1]["controllerName"], CTL);

    // A route that no longer names our Gateway loses our entry and keeps theirs.
    let mut s = snapshot(&json!({"parents": [other, stale]}));
    Arc::make_mut(&mut s.routes[0]).spec.parent_refs.clear();
    let (_, statuses) = translate::translate(&translate::tests::served(&s));
    let writes = diff(&s, &statuses, "2026-01-01T00:00:00Z");
    let route = writes
        .iter()
        .find(|w| w.0 == "HTTPRoute")
        .expect("route write");
    assert_eq!(route.3["parents"], json!([other]));
}
