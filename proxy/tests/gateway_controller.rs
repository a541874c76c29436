//! The gateway controller against a real kube-apiserver (scripts/kube-test-env.sh: Debian etcd
//! and the pinned kube-apiserver, loopback only) with the Gateway API v1.6.3 standard-channel
//! CRDs from the Go module cache. Objects are created through the API; the test asserts on the
//! table the controller publishes and on the status it writes: Accepted/Programmed/ResolvedRefs
//! with their reasons, including a missing Secret, a missing backend Service and an invalid
//! match; then that an EndpointSlice change republishes the table and that shutdown releases
//! the Lease. Each Gateway gets its own Service (two Gateways on one port: two internal ports,
//! two addresses), deleted with its Gateway.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use outrigger_proxy::gateway::controller::services::{GATEWAY_NAME, service_name};
use outrigger_proxy::gateway::controller::{self, Options};
use outrigger_proxy::gateway::table::{Backend, PathMatch, Protocol, Table};
use serde_json::{Value, json};
use tokio::sync::watch;

#[path = "gateway_controller/kube_env.rs"]
mod kube_env;

use kube_env::{KubeEnv, conds, crd_dir, create, eventually, get, resource};

const CTL: &str = "outrigger.dev/gateway-controller";

fn tls_secret() -> Value {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gw.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gw-cert", "namespace": "infra"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": b64(cert.pem()), "tls.key": b64(key.serialize_pem())}})
}

fn route(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "apps"},
        "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": rules}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_publishes_the_table_and_writes_status() {
    // The toolchain's kubectl (of the pinned Kubernetes version) applies the CRDs.
    let tools =
        ["kube-apiserver", "etcd", "kubectl", "go"].map(outrigger_test_support::require_tool);
    let [Some(_), Some(_), Some(kubectl), Some(go)] = tools else {
        return;
    };
    let Some(crds) = crd_dir(&go) else { return };
    let Some(env) = KubeEnv::start() else {
        return;
    };
    env.kubectl(
        &kubectl,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
    );
    let wait = [
        "wait",
        "--for=condition=established",
        "crd",
        "--all",
        "--timeout=60s",
    ];
    env.kubectl(&kubectl, &wait);
    let client = env.client().await;

    let ns = resource("", "v1", "Namespace", "namespaces");
    for (name, labels) in [
        ("infra", json!({})),
        ("apps", json!({"team": "a"})),
        ("other", json!({})),
        ("outrigger-system", json!({})),
    ] {
        create(&client, &ns, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})).await;
    }
    let gwc = resource(
        "gateway.networking.k8s.io",
        "v1",
        "GatewayClass",
        "gatewayclasses",
    );
    let gw = resource("gateway.networking.k8s.io", "v1", "Gateway", "gateways");
    let hr = resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes");
    let rg = resource(
        "gateway.networking.k8s.io",
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
    );
    let svc = resource("", "v1", "Service", "services");
    let eps = resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices");
    let secret = resource("", "v1", "Secret", "secrets");

    create(
        &client,
        &gwc,
        None,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "outrigger"}, "spec": {"controllerName": CTL}}),
    )
    .await;
    create(&client, &secret, Some("infra"), tls_secret()).await;
    create(&client, &gw, Some("infra"), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"}, "spec": {"gatewayClassName": "outrigger", "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Selector",
                "selector": {"matchLabels": {"team": "a"}}}}},
            {"name": "https", "port": 8443, "protocol": "HTTPS", "hostname": "gw.example.com",
                "tls": {"certificateRefs": [{"name": "gw-cert"}]}, "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "no-secret", "port": 9443, "protocol": "HTTPS",
                "tls": {"certificateRefs": [{"name": "missing"}]}, "allowedRoutes": {"namespaces": {"from": "All"}}},
            {"name": "udp", "port": 5353, "protocol": "UDP"}]}})).await;
    for (namespace, name) in [("apps", "web"), ("other", "shared")] {
        create(
            &client,
            &svc,
            Some(namespace),
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]}}),
        )
        .await;
    }
    create(&client, &eps, Some("apps"), json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "apps", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 3000, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
                      {"addresses": ["10.1.0.2"], "conditions": {"ready": false, "terminating": true}}]})).await;
    create(&client, &rg, Some("other"), json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "apps-to-shared", "namespace": "other"}, "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}],
            "to": [{"group": "", "kind": "Service", "name": "shared"}]}})).await;
    create(&client, &hr, Some("apps"), route("web", json!([
        {"matches": [{"path": {"type": "PathPrefix", "value": "/app"}}], "backendRefs": [{"name": "web", "port": 8080}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/shared"}}],
            "backendRefs": [{"name": "shared", "namespace": "other", "port": 8080}]}]))).await;
    create(&client, &hr, Some("apps"), route("missing-backend", json!([
        {"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}], "backendRefs": [{"name": "nope", "port": 8080}]}]))).await;
    create(&client, &hr, Some("apps"), route("bad-match", json!([
        {"matches": [{"path": {"type": "RegularExpression", "value": "/(["}}], "backendRefs": [{"name": "web", "port": 8080}]}]))).await;

    // A Lease left by a replica that died without giving it up: taken over once expired.
    let lease = resource("coordination.k8s.io", "v1", "Lease", "leases");
    create(
        &client,
        &lease,
        Some("outrigger-system"),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "outrigger-gateway", "namespace": "outrigger-system"},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 15, "leaseTransitions": 3,
                 "renewTime": "2020-01-01T00:00:00.000000Z"}}),
    )
    .await;

    let (tables_tx, mut tables_rx) = watch::channel(Arc::new(Table::default()));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let options = Options {
        controller_name: CTL.to_owned(),
        namespace: Some("outrigger-system".to_owned()),
        pod_selector: controller::Labels(
            [(
                "app.kubernetes.io/component".to_owned(),
                "gateway".to_owned(),
            )]
            .into(),
        ),
        internal_ports: controller::PortRange {
            first: 10_000,
            last: 10_099,
        },
        gateway_service_type: "ClusterIP".to_owned(),
        gateway_service_external_traffic_policy: None,
        gateway_service_annotations: vec![("example.com/lb".to_owned(), "small".to_owned())],
        lease_namespace: "outrigger-system".to_owned(),
        lease_name: "outrigger-gateway".to_owned(),
    };
    let controller = tokio::spawn(controller::run_with_client(
        options.clone(),
        client.clone(),
        "replica-a".to_owned(),
        tables_tx,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));

    // The table: HTTP 8080 and HTTPS 8443 (the listener without its Secret is not served), on
    // the internal ports the leader wrote into the Gateway's Service (8080, 8443 and 9443, in
    // order, take the first three of the range).
    let table = eventually("table", || {
        let t = tables_rx.borrow_and_update().clone();
        async move {
            let ports: Vec<(u16, u16, Protocol)> = t
                .ports
                .iter()
                .map(|p| (p.port, p.listener_port, p.protocol))
                .collect();
            if ports
                != [
                    (10_000, 8080, Protocol::Http),
                    (10_001, 8443, Protocol::Https),
                ]
            {
                return Err(format!("ports {ports:?}"));
            }
            Ok(t)
        }
    })
    .await;
    assert_eq!(table.ports[1].listeners[0].certificates.len(), 1);
    let rules = &table.ports[0].listeners[0].virtual_hosts[0].rules;
    let app = rules
        .iter()
        .find(|r| matches!(&r.matches.path, PathMatch::Prefix(p) if &**p == "/app"))
        .expect("/app rule");
    let Backend::Service(web) = &app.backends[0].backend else {
        panic!("web is a Service backend")
    };
    let endpoints: Vec<(String, bool, bool)> = table.endpoints[web]
        .iter()
        .map(|e| (e.addr.to_string(), e.ready, e.terminating))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("10.1.0.1:3000".to_owned(), true, false),
            ("10.1.0.2:3000".to_owned(), false, true)
        ]
    );
    let gone = rules
        .iter()
        .find(|r| matches!(&r.matches.path, PathMatch::Prefix(p) if &**p == "/gone"))
        .expect("/gone rule");
    assert!(matches!(gone.backends[0].backend, Backend::Invalid));
    assert!(
        !rules.iter().any(|r| &*r.route == "apps/bad-match"),
        "the invalid rule is dropped"
    );

    // GatewayClass.
    eventually("GatewayClass status", || async {
        let c = get(&client, &gwc, None, "outrigger").await;
        conds(
            &c["status"]["conditions"],
            &c["metadata"]["generation"],
            &[("Accepted", "True", "Accepted")],
        )
    })
    .await;

    // The Gateway's Service: in the pods' namespace, selecting the pods, one port per HTTP(S)
    // listener port targeting its internal port, the default annotation.
    let gw_svc = get(
        &client,
        &svc,
        Some("outrigger-system"),
        &service_name("infra", "gw"),
    )
    .await;
    assert_eq!(
        gw_svc["spec"]["selector"],
        json!({"app.kubernetes.io/component": "gateway"})
    );
    assert_eq!(gw_svc["metadata"]["annotations"]["example.com/lb"], "small");
    assert_eq!(gw_svc["metadata"]["labels"][GATEWAY_NAME], "gw");
    let ports: Vec<(i64, i64)> = gw_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [(8080, 10_000), (8443, 10_001), (9443, 10_002)]);

    // Gateway: accepted (one listener is not valid), programmed, its Service's ClusterIP as address, listener statuses.
    let cluster_ip = gw_svc["spec"]["clusterIP"].clone();
    eventually("Gateway status", || async {
        let g = get(&client, &gw, Some("infra"), "gw").await;
        let (st, generation) = (&g["status"], &g["metadata"]["generation"]);
        let want = [
            ("Accepted", "True", "ListenersNotValid"),
            ("Programmed", "True", "Programmed"),
        ];
        conds(&st["conditions"], generation, &want)?;
        if st["addresses"] != json!([{"type": "IPAddress", "value": cluster_ip}]) {
            return Err(format!("addresses {}", st["addresses"]));
        }
        let listener = |name: &str| {
            st["listeners"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["name"] == name))
                .cloned()
                .ok_or(format!("no listener {name}"))
        };
        let http = listener("http")?;
        if http["attachedRoutes"] != 2
            || http["supportedKinds"]
                != json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
        {
            return Err(format!("http listener {http}"));
        }
        let missing = listener("no-secret")?;
        let want = [
            ("ResolvedRefs", "False", "InvalidCertificateRef"),
            ("Programmed", "False", "Invalid"),
        ];
        conds(&missing["conditions"], generation, &want)?;
        let udp = listener("udp")?;
        conds(
            &udp["conditions"],
            generation,
            &[("Accepted", "False", "UnsupportedProtocol")],
        )?;
        if udp["supportedKinds"] != json!([]) {
            return Err(format!("udp listener {udp}"));
        }
        let https = listener("https")?;
        conds(
            &https["conditions"],
            generation,
            &[("ResolvedRefs", "True", "ResolvedRefs")],
        )
    })
    .await;

    // HTTPRoutes: one entry per parent with our controller name.
    let route_status =
        |name: &'static str, want: [(&'static str, &'static str, &'static str); 2]| {
            let client = client.clone();
            let hr = hr.clone();
            async move {
                let r = get(&client, &hr, Some("apps"), name).await;
                let parents = r["status"]["parents"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let [p] = parents.as_slice() else {
                    return Err(format!("{name}: parents {parents:?}"));
                };
                if p["controllerName"] != CTL || p["parentRef"]["name"] != "gw" {
                    return Err(format!("{name}: {p}"));
                }
                conds(&p["conditions"], &r["metadata"]["generation"], &want)
                    .map_err(|e| format!("{name}: {e}"))
            }
        };
    let (accepted, resolved) = (
        ("Accepted", "True", "Accepted"),
        ("ResolvedRefs", "True", "ResolvedRefs"),
    );
    let missing = ("ResolvedRefs", "False", "BackendNotFound");
    let unsupported = ("Accepted", "False", "UnsupportedValue");
    eventually("route web", || route_status("web", [accepted, resolved])).await;
    eventually("route missing-backend", || {
        route_status("missing-backend", [accepted, missing])
    })
    .await;
    eventually("route bad-match", || {
        route_status("bad-match", [unsupported, resolved])
    })
    .await;

    // Once written, status is not rewritten: the watched status equals the desired one.
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), "infra", &gw);
    let version = gateways.get("gw").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = gateways.get("gw").await.unwrap().metadata.resource_version;
    assert_eq!(
        version, again,
        "the Gateway's status was rewritten with no change"
    );

    // An EndpointSlice change gives a new table.
    let slices: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &eps);
    let patch = json!({"endpoints": [{"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
        {"addresses": ["10.1.0.3"], "conditions": {"ready": true}}]});
    slices
        .patch("web-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("table after the EndpointSlice change", || {
        let t = tables_rx.borrow_and_update().clone();
        let web = web.clone();
        async move {
            let addrs: Vec<String> = t
                .endpoints
                .get(&web)
                .into_iter()
                .flatten()
                .map(|e| e.addr.to_string())
                .collect();
            (addrs == ["10.1.0.1:3000", "10.1.0.3:3000"])
                .then_some(())
                .ok_or(format!("{addrs:?}"))
        }
    })
    .await;

    // Two Gateways with the same port and no hostname (the conformance suite's
    // HTTPRouteMultipleGateways): each gets its own Service, internal port and address.
    for name in ["same-a", "same-b"] {
        create(&client, &gw, Some("infra"), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "infra"}, "spec": {"gatewayClassName": "outrigger",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})).await;
    }
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "outrigger-system");
    let mut targets = Vec::new();
    for name in ["same-a", "same-b"] {
        let svc_name = service_name("infra", name);
        let (target, ip) = eventually(&format!("Service of {name}"), || async {
            let s = services.get(&svc_name).await.map_err(|e| e.to_string())?;
            let spec = s.spec.unwrap_or_default();
            let port = spec.ports.unwrap_or_default();
            match (port.as_slice(), spec.cluster_ip) {
                ([p], Some(ip)) if p.port == 80 => Ok((p.target_port.clone(), ip)),
                (p, ip) => Err(format!("ports {p:?}, clusterIP {ip:?}")),
            }
        })
        .await;
        eventually(&format!("{name}'s address"), || async {
            let g = get(&client, &gw, Some("infra"), name).await;
            let st = &g["status"];
            conds(
                &st["conditions"],
                &g["metadata"]["generation"],
                &[("Programmed", "True", "Programmed")],
            )?;
            (st["addresses"] == json!([{"type": "IPAddress", "value": ip}]))
                .then_some(())
                .ok_or(format!("addresses {}", st["addresses"]))
        })
        .await;
        targets.push(target);
    }
    assert_ne!(targets[0], targets[1], "two Gateways, two internal ports");
    eventually("table with both Gateways", || {
        let t = tables_rx.borrow_and_update().clone();
        async move {
            let names: Vec<String> = t
                .ports
                .iter()
                .filter(|p| p.listener_port == 80)
                .map(|p| {
                    p.listeners
                        .iter()
                        .map(|l| l.name.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            (names == ["infra/same-a/http", "infra/same-b/http"])
                .then_some(())
                .ok_or(format!("{names:?}"))
        }
    })
    .await;
    // A deleted Gateway's Service is deleted, and its port leaves the table.
    Api::<DynamicObject>::namespaced_with(client.clone(), "infra", &gw)
        .delete("same-b", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("same-b's Service deleted", || async {
        match services.get_opt(&service_name("infra", "same-b")).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually("table without same-b", || {
        let t = tables_rx.borrow_and_update().clone();
        async move {
            (t.ports.len() == 3)
                .then_some(())
                .ok_or(format!("{} ports", t.ports.len()))
        }
    })
    .await;

    // A second replica serves the same table but does not write status while the first one
    // holds the Lease; when the first one stops, it gives the Lease up and the second takes
    // over and writes status.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "outrigger-system");
    let holder = || async {
        let lease = leases
            .get("outrigger-gateway")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(lease.spec.and_then(|s| s.holder_identity))
    };
    assert_eq!(holder().await.unwrap().as_deref(), Some("replica-a"));
    let transitions = leases
        .get("outrigger-gateway")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.lease_transitions);
    assert_eq!(transitions, Some(4), "the expired Lease was taken over");
    let (b_tables_tx, mut b_tables_rx) = watch::channel(Arc::new(Table::default()));
    let (b_stop_tx, mut b_stop_rx) = watch::channel(false);
    let replica_b = tokio::spawn(controller::run_with_client(
        options,
        client.clone(),
        "replica-b".to_owned(),
        b_tables_tx,
        async move {
            let _ = b_stop_rx.wait_for(|s| *s).await;
        },
    ));
    eventually("replica b's table", || {
        let t = b_tables_rx.borrow_and_update().clone();
        async move {
            (t.ports.len() == 3)
                .then_some(())
                .ok_or(format!("{} ports", t.ports.len()))
        }
    })
    .await;
    assert_eq!(holder().await.unwrap().as_deref(), Some("replica-a"));

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .expect("controller stops")
        .unwrap();
    eventually("replica b takes the Lease", || async {
        let h = holder().await?;
        (h.as_deref() == Some("replica-b"))
            .then_some(())
            .ok_or(format!("holder {h:?}"))
    })
    .await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), "apps", &hr);
    let fix = json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}],
        "backendRefs": [{"name": "web", "port": 8080}]}]}});
    routes
        .patch(
            "missing-backend",
            &PatchParams::default(),
            &Patch::Merge(&fix),
        )
        .await
        .unwrap();
    eventually("status written by replica b", || {
        route_status("missing-backend", [accepted, resolved])
    })
    .await;

    b_stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), replica_b)
        .await
        .expect("replica b stops")
        .unwrap();
    assert_eq!(holder().await.unwrap(), None, "lease released on shutdown");
}
