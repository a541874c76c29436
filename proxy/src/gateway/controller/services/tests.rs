//! Unit tests of the per-Gateway Services: names, internal port allocation, the Service spec.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn gateway(ns: &str, name: &str, ports: &[i64], extra: &Value) -> Gateway {
    let listeners: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"name": format!("l{i}"), "port": p, "protocol": "HTTP"}))
        .collect();
    let mut spec = json!({"gatewayClassName": "outrigger", "listeners": listeners});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("gateway")
}

fn settings(first: u16, last: u16) -> Settings {
    Settings {
        range: PortRange { first, last },
        ..Settings::default()
    }
}

/// The managed Services as the API server would hold them after the leader applied `plan`.
fn applied(gws: &[&Gateway], plan: &Plan, s: &Settings) -> BTreeMap<GatewayKey, Managed> {
    let services: Vec<Arc<Service>> = gws
        .iter()
        .filter_map(|g| {
            let key = (
                g.metadata.namespace.clone().unwrap_or_default(),
                g.metadata.name.clone().unwrap_or_default(),
            );
            let ports = plan.get(&key)?.as_ref().ok()?;
            Some(Arc::new(desired(g, ports, s)))
        })
        .collect();
    managed(&services, &s.namespace)
}

fn ok(plan: &Plan, ns: &str, name: &str) -> Vec<(u16, u16)> {
    plan[&(ns.to_owned(), name.to_owned())]
        .clone()
        .expect("planned")
        .into_iter()
        .collect()
}

#[test]
fn names_are_stable_short_and_distinct() {
    let a = service_name("infra", "same-namespace");
    assert_eq!(a, service_name("infra", "same-namespace"));
    assert!(a.starts_with("outrigger-gw-same-namespace-"), "{a}");
    assert_ne!(a, service_name("other", "same-namespace"));
    let long = service_name(&"n".repeat(63), &"g".repeat(253));
    assert!(long.len() <= 63, "{long}");
    assert!(service_name("ns", "-.-").starts_with("outrigger-gw-"));
    assert!(!service_name("ns", "-.-").contains("--"));
}

#[test]
fn allocation_is_stable_reuses_and_never_clashes() {
    let s = settings(10_000, 10_009);
    let a = gateway("infra", "a", &[80, 443, 80], &json!({}));
    let b = gateway("infra", "b", &[80], &json!({}));
    let first = plan(&[&a, &b], &BTreeMap::new(), &s);
    assert_eq!(ok(&first, "infra", "a"), [(80, 10_000), (443, 10_001)]);
    assert_eq!(ok(&first, "infra", "b"), [(80, 10_002)]);
    // Once the Services exist, the same plan comes back (nothing moves)...
    let managed = applied(&[&a, &b], &first, &s);
    assert_eq!(plan(&[&a, &b], &managed, &s), first);
    // ... also when a Gateway is gone (its port is free again, the others keep theirs) and
    // when a new one arrives (it takes the free one).
    let c = gateway("infra", "c", &[8080], &json!({}));
    let again = plan(&[&b, &c], &managed, &s);
    assert_eq!(ok(&again, "infra", "b"), [(80, 10_002)]);
    assert_eq!(ok(&again, "infra", "c"), [(8080, 10_000)]);
    // Two Services claiming one port (edited by hand): the first Gateway keeps it.
    let mut clash = managed.clone();
    if let Some(m) = clash.get_mut(&("infra".to_owned(), "b".to_owned())) {
        m.ports.insert(80, 10_000);
    }
    let fixed = plan(&[&a, &b], &clash, &s);
    assert_eq!(ok(&fixed, "infra", "a"), [(80, 10_000), (443, 10_001)]);
    assert_eq!(ok(&fixed, "infra", "b"), [(80, 10_002)]);
}

#[test]
fn an_exhausted_range_is_reported() {
    let small = settings(10_000, 10_001);
    let a = gateway("infra", "a", &[80, 81], &json!({}));
    let b = gateway("infra", "b", &[80], &json!({}));
    let planned = plan(&[&a, &b], &BTreeMap::new(), &small);
    assert_eq!(ok(&planned, "infra", "a").len(), 2);
    let b_plan = &planned[&("infra".to_owned(), "b".to_owned())];
    assert!(
        matches!(b_plan, Err(PlanError::Exhausted(m)) if m.contains("10000-10001")),
        "{b_plan:?}"
    );
}

#[test]
fn the_service_carries_labels_annotations_ports_and_address() {
    let mut s = settings(10_000, 19_999);
    s.namespace = "gw-system".into();
    s.annotations = BTreeMap::from([
        ("lb/size".to_owned(), "small".to_owned()),
        ("lb/name".to_owned(), "default".to_owned()),
    ]);
    let gw = gateway(
        "apps",
        "public",
        &[80, 443],
        &json!({"addresses": [{"type": "IPAddress", "value": "10.242.0.13"}],
        "infrastructure": {"annotations": {"lb/name": "public"}, "labels": {"team": "edge"}}}),
    );
    let ports = BTreeMap::from([(80, 10_004), (443, 10_007)]);
    let svc = desired(&gw, &ports, &s);
    let v = serde_json::to_value(&svc).expect("json");
    assert_eq!(v["metadata"]["namespace"], "gw-system");
    assert_eq!(v["metadata"]["name"], service_name("apps", "public"));
    assert_eq!(
        v["metadata"]["labels"],
        json!({"team": "edge", MANAGED_BY: MANAGED_BY_VALUE, GATEWAY_NAME: "public", GATEWAY_NAMESPACE: "apps"})
    );
    assert_eq!(
        v["metadata"]["annotations"],
        json!({"lb/size": "small", "lb/name": "public", ANNOTATIONS: "lb/name,lb/size"})
    );
    assert_eq!(v["spec"]["type"], "ClusterIP");
    assert_eq!(v["spec"]["clusterIP"], "10.242.0.13");
    assert!(v["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(
        v["spec"]["selector"],
        json!({"app.kubernetes.io/component": "gateway"})
    );
    assert_eq!(
        v["spec"]["ports"],
        json!([{"name": "port-80", "port": 80, "targetPort": 10_004, "protocol": "TCP"},
               {"name": "port-443", "port": 443, "targetPort": 10_007, "protocol": "TCP"}])
    );
    // What the Service says comes back as the Gateway's ports.
    let read = managed(&[Arc::new(svc.clone())], "gw-system");
    assert_eq!(read[&("apps".to_owned(), "public".to_owned())].ports, ports);
    assert!(
        managed(&[Arc::new(svc.clone())], "elsewhere").is_empty(),
        "only the pods' namespace"
    );
    // Unchanged: no write; another port or annotation: an update; another IP: a new Service.
    assert!(!needs_update(&svc, &svc) && !needs_recreate(&svc, &svc));
    let mut other = svc.clone();
    if let Some(p) = other.spec.as_mut().and_then(|s| s.ports.as_mut()) {
        p[0].target_port = Some(IntOrString::Int(10_005));
    }
    assert!(needs_update(&other, &svc));
    let mut other = svc.clone();
    other.metadata.annotations = None;
    assert!(needs_update(&other, &svc));
    // An annotation no longer wanted: the key list differs, so the apply that drops it goes out.
    let mut fewer = s.clone();
    fewer.annotations.remove("lb/size");
    assert!(needs_update(&svc, &desired(&gw, &ports, &fewer)));
    let mut other = svc.clone();
    if let Some(spec) = other.spec.as_mut() {
        spec.cluster_ip = Some("10.242.0.99".into());
    }
    assert!(needs_recreate(&other, &svc));

    s.type_ = "LoadBalancer".into();
    s.external_traffic_policy = Some("Local".into());
    let v = serde_json::to_value(desired(&gw, &ports, &s)).expect("json");
    assert_eq!(v["spec"]["loadBalancerIP"], "10.242.0.13");
    assert_eq!(v["spec"]["externalTrafficPolicy"], "Local");
    assert!(v["spec"].get("clusterIP").is_none());
}

#[test]
fn addresses_that_cannot_be_honoured() {
    let s = Settings::default();
    let with = |addrs: Value| gateway("infra", "g", &[80], &json!({ "addresses": addrs }));
    let err = |g: &Gateway| requested_ip(g, "ClusterIP").expect_err("unsupported");
    assert!(
        err(&with(
            json!([{"type": "Hostname", "value": "gw.example.com"}])
        ))
        .contains("Hostname")
    );
    assert!(err(&with(json!([{"value": "not-an-ip"}]))).contains("not an IP"));
    assert!(
        err(&with(
            json!([{"value": "10.0.0.1"}, {"type": "IPAddress", "value": "10.0.0.2"}])
        ))
        .contains("at most one")
    );
    let one = with(json!([{"value": "10.0.0.1"}]));
    assert!(requested_ip(&one, "NodePort").is_err());
    let p = plan(
        &[&with(json!([{"type": "Hostname", "value": "x"}]))],
        &BTreeMap::new(),
        &s,
    );
    assert!(matches!(
        p[&("infra".to_owned(), "g".to_owned())],
        Err(PlanError::UnsupportedAddress(_))
    ));
}

#[test]
fn addresses_prefer_the_load_balancer_then_the_cluster_ips() {
    let svc = |v: Value| -> Service { serde_json::from_value(v).expect("service") };
    let lb = svc(json!({"spec": {"clusterIP": "10.0.0.1"},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}}));
    let dual =
        svc(json!({"spec": {"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.2", "fd00::2"]}}));
    let headless = svc(json!({"spec": {"clusterIP": "None"}}));
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(t, a)| ((*t).to_owned(), (*a).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        addresses(&lb),
        pairs(&[("IPAddress", "203.0.113.7"), ("Hostname", "lb.example.com")])
    );
    assert_eq!(
        addresses(&dual),
        pairs(&[("IPAddress", "10.0.0.2"), ("IPAddress", "fd00::2")])
    );
    assert!(addresses(&headless).is_empty());
}
