//! Route translation tests: attachment, hostnames, precedence, backends, rules and filters.

// The fixture builders take `json!` values by value so that call sites stay one expression.
#![allow(clippy::needless_pass_by_value)]

use serde_json::{Value, json};

use super::*;

#[test]
fn route_attachment_reasons() {
    let mut s = base();
    s.gateways = vec![gateway(json!([
        {"name": "same", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
        {"name": "sel", "port": 81, "protocol": "HTTP",
         "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}}},
    ]))];
    s.namespaces = vec![obj(
        json!({"metadata": {"name": "apps", "labels": {"team": "a"}}}),
    )];
    let parent = |extra: Value| {
        let mut p = json!({"name": "gw", "namespace": "infra"});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    s.routes = vec![
        route(
            "apps",
            "no-section",
            json!({"parentRefs": [parent(json!({"sectionName": "nope"}))]}),
        ),
        route(
            "apps",
            "no-port",
            json!({"parentRefs": [parent(json!({"port": 9999}))]}),
        ),
        route(
            "apps",
            "not-allowed",
            json!({"parentRefs": [parent(json!({"sectionName": "same"}))]}),
        ),
        route(
            "other",
            "not-selected",
            json!({"parentRefs": [parent(json!({"sectionName": "sel"}))]}),
        ),
        route(
            "infra",
            "bad-host",
            json!({"parentRefs": [parent(json!({"sectionName": "same"}))], "hostnames": ["foo.other.org"]}),
        ),
        route(
            "infra",
            "good-host",
            json!({"parentRefs": [parent(json!({"sectionName": "same"}))], "hostnames": ["a.example.com", "x.org"]}),
        ),
        route(
            "apps",
            "selected",
            json!({"parentRefs": [parent(json!({"sectionName": "sel"}))]}),
        ),
        route(
            "apps",
            "foreign",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra", "kind": "Service", "group": ""}]}),
        ),
    ];
    let (table, st) = translate(&s);
    assert_eq!(
        route_cond(&st, "no-section", "Accepted").reason,
        "NoMatchingParent"
    );
    assert_eq!(
        route_cond(&st, "no-port", "Accepted").reason,
        "NoMatchingParent"
    );
    assert_eq!(
        route_cond(&st, "not-allowed", "Accepted").reason,
        "NotAllowedByListeners"
    );
    assert_eq!(
        route_cond(&st, "not-selected", "Accepted").reason,
        "NotAllowedByListeners"
    );
    assert_eq!(
        route_cond(&st, "bad-host", "Accepted").reason,
        "NoMatchingListenerHostname"
    );
    assert_eq!(route_cond(&st, "good-host", "Accepted").reason, "Accepted");
    assert_eq!(route_cond(&st, "selected", "Accepted").reason, "Accepted");
    assert!(
        st.routes.iter().all(|r| r.name != "foreign"),
        "no status for parents that are not ours"
    );
    let l = &st.gateways[0].listeners;
    assert_eq!((l[0].attached_routes, l[1].attached_routes), (1, 1));
    let vh = &table.ports[0].listeners[0].virtual_hosts;
    assert_eq!(vh.len(), 1);
    assert_eq!(
        vh[0].hostname,
        Some(Hostname::Exact("a.example.com".into()))
    );
}

#[test]
fn hostname_intersection() {
    use crate::gateway::controller::translate::routes::intersect;
    let w = |s: &str| Hostname::Wildcard(s.into());
    let e = |s: &str| Hostname::Exact(s.into());
    let hosts = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    assert_eq!(intersect(None, &[]), Some(vec![None]));
    assert_eq!(
        intersect(Some(&e("a.com")), &[]),
        Some(vec![Some(e("a.com"))])
    );
    assert_eq!(
        intersect(None, &hosts(&["A.com", "*.b.com"])),
        Some(vec![Some(e("a.com")), Some(w(".b.com"))])
    );
    assert_eq!(
        intersect(Some(&e("x.b.com")), &hosts(&["*.b.com"])),
        Some(vec![Some(e("x.b.com"))])
    );
    assert_eq!(intersect(Some(&e("b.com")), &hosts(&["*.b.com"])), None);
    assert_eq!(
        intersect(Some(&w(".b.com")), &hosts(&["x.y.b.com", "b.com"])),
        Some(vec![Some(e("x.y.b.com"))])
    );
    assert_eq!(
        intersect(Some(&w(".b.com")), &hosts(&["*.x.b.com"])),
        Some(vec![Some(w(".x.b.com"))])
    );
    assert_eq!(
        intersect(Some(&w(".x.b.com")), &hosts(&["*.b.com"])),
        Some(vec![Some(w(".x.b.com"))])
    );
    assert_eq!(intersect(Some(&w(".b.com")), &hosts(&["*.c.com"])), None);
}

#[test]
fn precedence_across_routes_and_hosts() {
    let mut s = base();
    let backend = json!([{"name": "web", "port": 8080}]);
    s.routes = vec![
        route(
            "apps",
            "b-any",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [
            {"matches": [{"path": {"value": "/"}}, {"path": {"type": "Exact", "value": "/x"}}], "backendRefs": backend}]}),
        ),
        route(
            "apps",
            "a-host",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "hostnames": ["h.com"], "rules": [
            {"matches": [{"path": {"value": "/a"}}, {"path": {"value": "/a/b"}, "method": "GET"},
                         {"path": {"value": "/a/b"}, "headers": [{"name": "x", "value": "1"}]}], "backendRefs": backend}]}),
        ),
    ];
    let (table, _) = translate(&s);
    let vh = &table.ports[0].listeners[0].virtual_hosts;
    assert_eq!(vh.len(), 2);
    assert_eq!(vh[0].hostname, Some(Hostname::Exact("h.com".into())));
    let paths: Vec<(String, &str)> = vh[0]
        .rules
        .iter()
        .map(|r| {
            let p = match &r.matches.path {
                PathMatch::Exact(p) => format!("={p}"),
                PathMatch::Prefix(p) => p.to_string(),
                PathMatch::RegularExpression(r) => r.to_string(),
            };
            (p, &*r.route)
        })
        .collect();
    let expect = [
        ("/a/b", "apps/a-host"),
        ("/a/b", "apps/a-host"),
        ("/a", "apps/a-host"),
        ("=/x", "apps/b-any"),
        ("/", "apps/b-any"),
    ];
    let got: Vec<(&str, &str)> = paths.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    assert_eq!(got, expect);
    assert!(
        vh[0].rules[0].matches.method.is_some(),
        "method beats header count"
    );
    assert_eq!(vh[1].hostname, None);
    assert_eq!(vh[1].rules.len(), 2);
}

#[test]
fn backend_refs_resolution() {
    let mut s = base();
    s.services.push(service("other", "svc"));
    let refs = json!([
        {"name": "web", "port": 8080, "weight": 5},
        {"name": "gone", "port": 8080},
        {"name": "svc", "namespace": "other", "port": 8080},
        {"name": "thing", "kind": "ConfigMap", "group": "", "port": 1, "weight": 2},
    ]);
    s.routes = vec![route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{"backendRefs": refs}]}),
    )];
    let (table, st) = translate(&s);
    assert_eq!(
        route_cond(&st, "r", "ResolvedRefs").reason,
        "BackendNotFound"
    );
    let rule = &table.ports[0].listeners[0].virtual_hosts[0].rules[0];
    let kinds: Vec<(u32, bool)> = rule
        .backends
        .iter()
        .map(|b| (b.weight, matches!(b.backend, Backend::Service(_))))
        .collect();
    assert_eq!(kinds, vec![(5, true), (1, false), (1, false), (2, false)]);

    s.routes = vec![route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{"backendRefs": [
        {"name": "svc", "namespace": "other", "port": 8080}]}]}),
    )];
    assert_eq!(
        route_cond(&translate(&s).1, "r", "ResolvedRefs").reason,
        "RefNotPermitted"
    );
    s.grants = vec![obj(
        json!({"metadata": {"namespace": "other", "name": "g"}, "spec": {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}],
        "to": [{"group": "", "kind": "Service", "name": "svc"}]}}),
    )];
    let (table, st) = translate(&s);
    assert!(route_cond(&st, "r", "ResolvedRefs").status);
    assert!(table.endpoints.keys().any(|k| &*k.namespace == "other"));

    s.routes = vec![route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{"backendRefs": [
        {"name": "x", "kind": "Bucket", "group": "example.com", "port": 1}]}]}),
    )];
    assert_eq!(
        route_cond(&translate(&s).1, "r", "ResolvedRefs").reason,
        "InvalidKind"
    );
}

#[test]
fn headless_and_selectorless_services_use_their_slices() {
    let mut s = base();
    s.services = vec![obj(
        json!({"metadata": {"namespace": "apps", "name": "web"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}}),
    )];
    s.slices = vec![
        slice("apps", "web", &[("10.0.0.9", true, false)]),
        // Another service's slice and a slice with the wrong port name are not used.
        slice("apps", "db", &[("10.0.0.7", true, false)]),
        obj(
            json!({"metadata": {"namespace": "apps", "name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "metrics", "port": 9090}], "endpoints": [{"addresses": ["10.0.0.8"]}]}),
        ),
    ];
    s.routes.push(simple_route());
    let (table, _) = translate(&s);
    let eps: Vec<String> = table
        .endpoints
        .values()
        .flatten()
        .map(|e| e.addr.to_string())
        .collect();
    assert_eq!(eps, vec!["10.0.0.9:3000"]);
}

#[test]
fn invalid_rules_are_dropped_with_a_reason() {
    let mut s = base();
    s.routes = vec![
        route(
            "apps",
            "all-bad",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [
            {"matches": [{"path": {"type": "RegularExpression", "value": "(["}}]}]}),
        ),
        route(
            "apps",
            "part-bad",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [
            {"matches": [{"path": {"value": "/ok"}}], "backendRefs": [{"name": "web", "port": 8080}]},
            {"filters": [{"type": "RequestMirror"}]},
            {"matches": [{"headers": [{"name": "bad header", "value": "x"}]}]},
            {"timeouts": {"request": "forever"}}]}),
        ),
    ];
    let (table, st) = translate(&s);
    let all_bad = route_cond(&st, "all-bad", "Accepted");
    assert!(!all_bad.status);
    assert_eq!(all_bad.reason, "UnsupportedValue");
    assert!(
        all_bad.message.contains("regular expression"),
        "{}",
        all_bad.message
    );
    assert!(route_cond(&st, "part-bad", "Accepted").status);
    let partial = route_cond(&st, "part-bad", "PartiallyInvalid");
    assert!(
        partial.message.contains("RequestMirror") && partial.message.contains("forever"),
        "{}",
        partial.message
    );
    assert_eq!(table.ports[0].listeners[0].virtual_hosts[0].rules.len(), 1);
}

#[test]
fn filters_and_timeouts() {
    use crate::gateway::table::{Filter, PathModifier};
    let mut s = base();
    s.routes = vec![route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-A", "value": "1"}], "remove": ["x-b"]}},
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-c", "value": "2"}]}},
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "port": 8443, "statusCode": 301,
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}},
            {"type": "URLRewrite", "urlRewrite": {"hostname": "h", "path": {"type": "ReplaceFullPath", "replaceFullPath": "/f"}}}],
        "timeouts": {"request": "1m30s", "backendRequest": "500ms"}}]}),
    )];
    let (table, _) = translate(&s);
    let rule = &table.ports[0].listeners[0].virtual_hosts[0].rules[0];
    assert!(
        matches!(&rule.filters[0], Filter::RequestHeaders(m) if m.set[0].0 == "x-a" && m.remove.len() == 1)
    );
    assert!(matches!(&rule.filters[1], Filter::ResponseHeaders(m) if m.add.len() == 1));
    assert!(
        matches!(&rule.filters[2], Filter::Redirect(r) if r.status == 301 && r.port == Some(8443)
        && matches!(&r.path, Some(PathModifier::Prefix(p)) if &**p == "/new"))
    );
    assert!(matches!(&rule.filters[3], Filter::Rewrite(r) if r.hostname.as_deref() == Some("h")));
    assert_eq!(
        rule.timeouts.request,
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        rule.timeouts.backend_request,
        Some(std::time::Duration::from_millis(500))
    );
}

#[test]
fn durations() {
    use crate::gateway::controller::translate::rules::parse_duration;
    use std::time::Duration;
    assert_eq!(parse_duration("0s"), Ok(None));
    assert_eq!(
        parse_duration("1h2m3s4ms"),
        Ok(Some(Duration::from_millis(3_723_004)))
    );
    for bad in ["", "1", "s", "1d", "123456s", "1s2s3s4s5s", "-1s", "1.5s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn malformed_objects_do_not_panic() {
    let mut s = base();
    // Everything defaulted: no names, no namespaces, no spec.
    s.gateway_classes.push(obj(
        json!({"metadata": {}, "spec": {"controllerName": CTL}}),
    ));
    s.gateways.push(obj(
        json!({"metadata": {}, "spec": {"gatewayClassName": "outrigger", "listeners": [{}]}}),
    ));
    s.gateways[0] = gateway(
        json!([{"name": "p", "port": 70000, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}, {"name": "t", "port": 444, "protocol": "HTTPS", "tls": {"mode": "Passthrough"}}]),
    );
    s.routes.push(obj(json!({"metadata": {}})));
    s.routes.push(route("apps", "empty", json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{"backendRefs": [{}]}]})));
    s.routes.push(route("apps", "weird", json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{
        "matches": [{"path": {"type": "Exact", "value": "no-slash"}}, {"method": "G E T"}, {"queryParams": [{"name": ""}]}],
        "backendRefs": [{"name": "web", "port": -1, "weight": -5}],
        "filters": [{"type": "RequestRedirect"}, {"type": "RequestRedirect", "requestRedirect": {"statusCode": 999}}]}]})));
    s.slices.push(obj(json!({"metadata": {"namespace": "apps", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 99999}], "endpoints": [{"addresses": ["not-an-ip"]}]})));
    s.secrets.push(obj(
        json!({"metadata": {"namespace": "infra", "name": "x"}}),
    ));
    let (_, st) = translate(&s);
    assert_eq!(
        route_cond(&st, "weird", "Accepted").reason,
        "UnsupportedValue"
    );
    let gw = st.gateways.iter().find(|g| g.name == "gw").expect("gw");
    assert_eq!(
        cond(&gw.listeners[1].conditions, "Accepted").reason,
        "UnsupportedValue"
    );
}

#[test]
fn selectors() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let sel: LabelSelector = serde_json::from_value(json!({"matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "b", "operator": "In", "values": ["x", "y"]}, {"key": "c", "operator": "DoesNotExist"}]}))
    .expect("selector");
    let labels = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    };
    assert!(selector_matches(&sel, &labels(&[("a", "1"), ("b", "y")])));
    assert!(!selector_matches(&sel, &labels(&[("a", "1"), ("b", "z")])));
    assert!(!selector_matches(
        &sel,
        &labels(&[("a", "1"), ("b", "x"), ("c", "")])
    ));
    assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
}

#[test]
fn gateways_sharing_a_port_route_independently() {
    let mut s = base();
    s.gateways.push(obj(json!({"metadata": meta("infra", "gw2"), "spec": {"gatewayClassName": "outrigger",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}},
                      {"name": "x", "port": 80, "protocol": "HTTP", "hostname": "x.example.com",
                       "allowedRoutes": {"namespaces": {"from": "All"}}}]}})));
    let on = |gws: &[&str], path: &str| {
        let parents: Vec<Value> = gws
            .iter()
            .map(|g| json!({"name": g, "namespace": "infra"}))
            .collect();
        json!({"parentRefs": parents,
            "rules": [{"matches": [{"path": {"value": path}}], "backendRefs": [{"name": "web", "port": 8080}]}]})
    };
    s.routes = vec![
        route("apps", "one", on(&["gw"], "/")),
        route("apps", "two", on(&["gw2"], "/")),
        route("apps", "shared", on(&["gw", "gw2"], "/shared")),
    ];
    let (table, st) = translate(&s);
    assert_eq!(table.ports.len(), 2, "one internal port per Gateway");
    let routes = |l: &crate::gateway::table::Listener| -> Vec<String> {
        l.virtual_hosts
            .last()
            .expect("catch-all host")
            .rules
            .iter()
            .map(|r| r.route.to_string())
            .collect()
    };
    let (gw, gw2) = (&table.ports[0], &table.ports[1]);
    assert_eq!((gw.port, gw.listener_port), (10_000, 80));
    assert_eq!((gw2.port, gw2.listener_port), (10_001, 80));
    assert_eq!(gw.listeners.len(), 1);
    assert_eq!(routes(&gw.listeners[0]), ["apps/shared", "apps/one"]);
    let names: Vec<&str> = gw2.listeners.iter().map(|l| &*l.name).collect();
    assert_eq!(
        names,
        ["infra/gw2/x", "infra/gw2/http"],
        "most specific hostname first"
    );
    assert_eq!(routes(&gw2.listeners[1]), ["apps/shared", "apps/two"]);
    // Each Gateway reports its own Service's address.
    let addrs: Vec<&str> = st
        .gateways
        .iter()
        .map(|g| g.addresses[0].1.as_str())
        .collect();
    assert_eq!(addrs, ["10.96.0.1", "10.96.0.2"]);
    // Route two names gw2 without a section: it attaches to both of gw2's listeners.
    let gw2 = st.gateways.iter().find(|g| g.name == "gw2").expect("gw2");
    assert_eq!(
        (
            gw2.listeners[0].attached_routes,
            gw2.listeners[1].attached_routes
        ),
        (2, 2)
    );
}
