//! Unit tests of the translation, from JSON objects as the API server would send them.

// The fixture builders take `json!` values by value so that call sites stay one expression.
#![allow(clippy::needless_pass_by_value)]

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::gateway::table::{Backend, Hostname, PathMatch, Protocol, Table};

pub(super) const CTL: &str = "outrigger.dev/gateway-controller";

pub(super) fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("fixture deserializes"))
}

pub(super) fn meta(ns: &str, name: &str) -> Value {
    json!({"namespace": ns, "name": name, "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z"})
}

pub(super) fn class() -> Arc<GatewayClass> {
    obj(
        json!({"metadata": {"name": "outrigger", "generation": 1}, "spec": {"controllerName": CTL}}),
    )
}

pub(super) fn gateway(listeners: Value) -> Arc<Gateway> {
    obj(
        json!({"metadata": meta("infra", "gw"), "spec": {"gatewayClassName": "outrigger", "listeners": listeners}}),
    )
}

pub(super) fn http_listener() -> Value {
    json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}])
}

pub(super) fn route(ns: &str, name: &str, spec: Value) -> Arc<HttpRoute> {
    obj(json!({"metadata": meta(ns, name), "spec": spec}))
}

pub(super) fn service(ns: &str, name: &str) -> Arc<k8s_openapi::api::core::v1::Service> {
    obj(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]}}))
}

pub(super) fn slice(
    ns: &str,
    svc: &str,
    addrs: &[(&str, bool, bool)],
) -> Arc<k8s_openapi::api::discovery::v1::EndpointSlice> {
    let eps: Vec<Value> = addrs
        .iter()
        .map(|(a, ready, term)| json!({"addresses": [a], "conditions": {"ready": ready, "terminating": term}}))
        .collect();
    obj(
        json!({"metadata": {"namespace": ns, "name": format!("{svc}-abc"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 3000}], "endpoints": eps}),
    )
}

pub(super) fn base() -> Snapshot {
    Snapshot {
        controller_name: CTL.into(),
        gateway_classes: vec![class()],
        gateways: vec![gateway(http_listener())],
        services: vec![service("apps", "web")],
        slices: vec![slice(
            "apps",
            "web",
            &[("10.0.0.1", true, false), ("10.0.0.2", false, true)],
        )],
        ..Snapshot::default()
    }
}

/// `snapshot` after the leader created the Services the translation asks for, each with a
/// ClusterIP 10.96.0.<n> (n from 1, in the order asked).
pub(crate) fn served(snapshot: &Snapshot) -> Snapshot {
    let (_, st) = super::translate(snapshot);
    let mut s = snapshot.clone();
    for (i, svc) in st.services.into_iter().enumerate() {
        let mut svc = svc;
        if let Some(spec) = svc.spec.as_mut() {
            spec.cluster_ip
                .get_or_insert_with(|| format!("10.96.0.{}", i + 1));
        }
        let name = svc.metadata.name.clone();
        s.services.retain(|e| e.metadata.name != name);
        s.services.push(Arc::new(svc));
    }
    s
}

/// [`super::translate`] once the leader made the Gateways' Services, as in a running cluster.
pub(crate) fn translate(snapshot: &Snapshot) -> (Table, Statuses) {
    super::translate(&served(snapshot))
}

pub(super) fn simple_route() -> Arc<HttpRoute> {
    route(
        "apps",
        "web",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/app"}}],
                       "backendRefs": [{"name": "web", "port": 8080}]}]}),
    )
}

pub(super) fn cond<'a>(conds: &'a [Cond], type_: &str) -> &'a Cond {
    conds
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conds:?}"))
}

pub(super) fn route_cond(st: &Statuses, name: &str, type_: &str) -> Cond {
    let r = st
        .routes
        .iter()
        .find(|r| r.name == name)
        .expect("route status");
    cond(&r.parents[0].1, type_).clone()
}

#[test]
fn basic_path_builds_table_and_statuses() {
    let mut s = base();
    s.routes.push(simple_route());
    let (table, st) = translate(&s);
    assert_eq!(st.classes.len(), 1);
    assert!(cond(&st.classes[0].conditions, "Accepted").status);
    let gw = &st.gateways[0];
    assert_eq!(gw.generation, Some(3));
    assert_eq!(cond(&gw.conditions, "Accepted").reason, "Accepted");
    assert!(cond(&gw.conditions, "Programmed").status);
    assert_eq!(
        gw.addresses,
        vec![("IPAddress".to_owned(), "10.96.0.1".to_owned())]
    );
    assert_eq!(gw.listeners[0].attached_routes, 1);
    assert_eq!(gw.listeners[0].supported_kinds, vec!["HTTPRoute"]);
    assert_eq!(route_cond(&st, "web", "Accepted").reason, "Accepted");
    assert!(route_cond(&st, "web", "ResolvedRefs").status);

    assert_eq!(table.ports.len(), 1);
    let port = &table.ports[0];
    assert_eq!(
        (port.port, port.listener_port, port.protocol),
        (10_000, 80, Protocol::Http)
    );
    let rule = &port.listeners[0].virtual_hosts[0].rules[0];
    assert!(matches!(&rule.matches.path, PathMatch::Prefix(p) if &**p == "/app"));
    let Backend::Service(key) = &rule.backends[0].backend else {
        panic!("service backend")
    };
    let eps = &table.endpoints[key];
    assert_eq!(eps.len(), 2);
    assert!(eps[0].ready && !eps[0].terminating);
    assert!(!eps[1].ready && eps[1].terminating);
    assert_eq!(eps[0].addr.port(), 3000);
}

#[test]
fn other_controllers_classes_are_ignored() {
    let mut s = base();
    s.gateway_classes = vec![obj(
        json!({"metadata": {"name": "outrigger"}, "spec": {"controllerName": "example.com/other"}}),
    )];
    s.routes.push(simple_route());
    let (table, st) = translate(&s);
    assert!(table.ports.is_empty());
    assert!(st.classes.is_empty() && st.gateways.is_empty() && st.routes.is_empty());
}

#[test]
fn unsupported_protocol_and_invalid_kinds() {
    let mut s = base();
    s.gateways = vec![gateway(json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "udp", "port": 53, "protocol": "UDP"},
        {"name": "kinds", "port": 81, "protocol": "HTTP", "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}]}},
        {"name": "mixed", "port": 82, "protocol": "HTTP", "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}, {"kind": "HTTPRoute"}]}},
    ]))];
    let (table, st) = translate(&s);
    let gw = &st.gateways[0];
    let accepted = cond(&gw.conditions, "Accepted");
    assert!(accepted.status);
    assert_eq!(accepted.reason, "ListenersNotValid");
    let udp = &gw.listeners[1];
    assert_eq!(
        cond(&udp.conditions, "Accepted").reason,
        "UnsupportedProtocol"
    );
    assert!(udp.supported_kinds.is_empty());
    let kinds = &gw.listeners[2];
    assert!(kinds.supported_kinds.is_empty());
    assert_eq!(
        cond(&kinds.conditions, "ResolvedRefs").reason,
        "InvalidRouteKinds"
    );
    let mixed = &gw.listeners[3];
    assert_eq!(mixed.supported_kinds, vec!["HTTPRoute"]);
    assert_eq!(
        cond(&mixed.conditions, "ResolvedRefs").reason,
        "InvalidRouteKinds"
    );
    let ports: Vec<u16> = table.ports.iter().map(|p| p.listener_port).collect();
    assert_eq!(ports, vec![80, 82]);
}

#[test]
fn only_invalid_listeners_reject_the_gateway() {
    let mut s = base();
    s.gateways = vec![gateway(
        json!([{"name": "udp", "port": 53, "protocol": "UDP"}]),
    )];
    let (_, st) = translate(&s);
    let accepted = cond(&st.gateways[0].conditions, "Accepted");
    assert!(!accepted.status);
    assert_eq!(accepted.reason, "ListenersNotValid");
    let programmed = cond(&st.gateways[0].conditions, "Programmed");
    assert_eq!((programmed.status, programmed.reason), (false, "Invalid"));
    assert!(st.services.is_empty(), "a Service without ports is invalid");
}

#[test]
fn conflicts_on_one_port() {
    let mut s = base();
    s.gateways = vec![gateway(json!([
        {"name": "a", "port": 80, "protocol": "HTTP", "hostname": "a.example.com"},
        {"name": "b", "port": 80, "protocol": "HTTPS", "hostname": "b.example.com",
         "tls": {"certificateRefs": [{"name": "missing"}]}},
        {"name": "c", "port": 80, "protocol": "HTTP", "hostname": "a.example.com"},
    ]))];
    let (table, st) = translate(&s);
    let l = &st.gateways[0].listeners;
    assert!(!cond(&l[0].conditions, "Conflicted").status);
    assert_eq!(
        cond(&l[1].conditions, "Conflicted").reason,
        "ProtocolConflict"
    );
    assert_eq!(
        cond(&l[2].conditions, "Conflicted").reason,
        "HostnameConflict"
    );
    assert!(!cond(&l[2].conditions, "Accepted").status);
    assert!(!cond(&l[2].conditions, "Programmed").status);
    assert_eq!(table.ports[0].listeners.len(), 1);
}

pub(super) fn tls_secret(ns: &str, name: &str) -> Arc<k8s_openapi::api::core::v1::Secret> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    obj(
        json!({"metadata": {"namespace": ns, "name": name}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert.pem()), "tls.key": b64(key.serialize_pem())}}),
    )
}

pub(super) fn https_gateway(cert_ns: Option<&str>, cert_name: &str) -> Arc<Gateway> {
    let mut r = json!({"name": cert_name});
    if let Some(ns) = cert_ns {
        r["namespace"] = json!(ns);
    }
    gateway(
        json!([{"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [r]}}]),
    )
}

#[test]
fn https_certificates_resolve_or_say_why() {
    let mut s = base();
    s.secrets = vec![tls_secret("infra", "good"), tls_secret("certs", "other")];
    s.secrets.push(obj(
        json!({"metadata": {"namespace": "infra", "name": "junk"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm9wZQ=="}}),
    ));
    let reason = |s: &Snapshot| {
        let (table, st) = translate(s);
        let l = &st.gateways[0].listeners[0];
        (cond(&l.conditions, "ResolvedRefs").reason, table)
    };
    s.gateways = vec![https_gateway(None, "good")];
    let (r, table) = reason(&s);
    assert_eq!(r, "ResolvedRefs");
    assert_eq!(table.ports[0].protocol, Protocol::Https);
    assert_eq!(table.ports[0].listeners[0].certificates.len(), 1);

    s.gateways = vec![https_gateway(None, "missing")];
    assert_eq!(reason(&s).0, "InvalidCertificateRef");
    s.gateways = vec![https_gateway(None, "junk")];
    let (r, table) = reason(&s);
    assert_eq!(r, "InvalidCertificateRef");
    assert!(
        table.ports.is_empty(),
        "a listener without a certificate is not served"
    );

    s.gateways = vec![https_gateway(Some("certs"), "other")];
    assert_eq!(reason(&s).0, "RefNotPermitted");
    s.grants = vec![obj(
        json!({"metadata": {"namespace": "certs", "name": "g"}, "spec": {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}],
        "to": [{"group": "", "kind": "Secret"}]}}),
    )];
    assert_eq!(reason(&s).0, "ResolvedRefs");
}

mod routes;

/// The conformance suite's certificates are RSA with PKCS#1 keys (`RSA PRIVATE KEY`), as Go's
/// `x509.MarshalPKCS1PrivateKey` writes them; made here with openssl.
#[test]
fn rsa_pkcs1_secrets_load() {
    use std::process::Command;
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, pkcs1, crt) = (
        dir.path().join("k"),
        dir.path().join("k1"),
        dir.path().join("c"),
    );
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl req");
    let ok = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pkcs1)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl rsa");
    let pem = |p: &std::path::Path| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).expect("read"))
    };
    let key_pem = std::fs::read_to_string(&pkcs1).expect("read");
    assert!(
        key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{key_pem}"
    );
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"namespace": "infra", "name": "rsa"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": pem(&crt), "tls.key": pem(&pkcs1)}}))
    .expect("secret");
    listeners::certified_key(&secret).expect("RSA PKCS#1 key and certificate load");
}

#[test]
fn gateways_may_use_one_port_with_other_protocols() {
    let mut s = base();
    s.secrets = vec![tls_secret("infra", "good")];
    let mut younger = serde_json::to_value(&*https_gateway(None, "good")).expect("json");
    younger["metadata"]["name"] = json!("gw2");
    younger["metadata"]["creationTimestamp"] = json!("2026-02-01T00:00:00Z");
    younger["spec"]["listeners"][0]["port"] = json!(80);
    s.gateways.push(obj(younger));
    let (table, st) = translate(&s);
    for gw in &st.gateways {
        let l = &gw.listeners[0];
        assert!(!cond(&l.conditions, "Conflicted").status, "{gw:?}");
        assert!(cond(&l.conditions, "Programmed").status, "{gw:?}");
    }
    let ports: Vec<_> = table
        .ports
        .iter()
        .map(|p| (p.port, p.listener_port, p.protocol))
        .collect();
    assert_eq!(
        ports,
        [(10_000, 80, Protocol::Http), (10_001, 80, Protocol::Https)]
    );
}

#[test]
fn a_gateway_without_its_service_is_pending() {
    let mut s = base();
    s.routes.push(simple_route());
    // Not `translate` of this module: no leader has made the Service yet.
    let (table, st) = super::translate(&s);
    assert!(table.ports.is_empty());
    let gw = &st.gateways[0];
    assert_eq!(cond(&gw.conditions, "Programmed").reason, "Pending");
    assert_eq!(
        cond(&gw.listeners[0].conditions, "Programmed").reason,
        "Pending"
    );
    assert!(gw.addresses.is_empty());
    assert_eq!(st.services.len(), 1, "the leader is asked for the Service");
}
