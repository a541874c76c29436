//! Pod metadata through the real kube client: recorded API server responses (a node-scoped
//! PodList, then a watch stream with an ADDED and a DELETED event) are served over HTTP by an
//! in-test server; the agent must send the `spec.nodeName` field selector, label entries with the
//! pod's app label, put the owner workload in structured metadata, and keep a deleted pod's
//! metadata while its files are still being read.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Agent, Container, Mode, Sink, http1_conn, serve_in_thread, wait_for};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::Response;
use hyper::body::Frame;

const LIST: &str = include_str!("fixtures/kube/pods-list.json");
const WATCH: &str = include_str!("fixtures/kube/watch-events.jsonl");

/// The agent with the pod metadata watch on, against the cluster in `kubeconfig`.
fn kube_agent(root: &Path, state: &Path, sink: &Sink, kubeconfig: &str) -> Agent {
    Agent::spawn_env(
        root,
        state,
        &[
            "--loki-url",
            &sink.loki_url(),
            "--kube-metadata",
            "on",
            "--node-name",
            "node-a",
        ],
        &[("KUBECONFIG", kubeconfig)],
    )
}

/// Serves the recorded responses; returns the address and the request URIs seen.
fn fake_apiserver() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (addr, _thread) = serve_in_thread(Arc::default(), move |s| {
        let seen = s2.clone();
        http1_conn(s, move |req| {
            let seen = seen.clone();
            async move {
                let uri = req.uri().to_string();
                seen.lock().unwrap().push(uri.clone());
                let body: BoxBody<Bytes, Infallible> = if !req.uri().path().ends_with("/pods") {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"{}")).boxed());
                    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    return r;
                } else if uri.contains("watch=true") {
                    // Already-sent watches stay open and idle, like a quiet cluster.
                    let first = seen
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|u| u.contains("watch=true"))
                        .count()
                        == 1;
                    let events = if first {
                        WATCH.to_string()
                    } else {
                        String::new()
                    };
                    let stream = futures::stream::once(async move {
                        Ok::<_, Infallible>(Frame::data(Bytes::from(events)))
                    })
                    .chain(futures::stream::pending());
                    BodyExt::boxed(StreamBody::new(stream))
                } else {
                    Full::new(Bytes::from_static(LIST.as_bytes())).boxed()
                };
                let mut r = Response::new(body);
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                r
            }
        })
    });
    (addr, seen)
}

use futures::StreamExt as _;

#[test]
fn pod_metadata_from_recorded_api_responses() {
    let (api, seen) = fake_apiserver();
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = state.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: http://{api}\n\
             contexts:\n- name: t\n  context:\n    cluster: t\n    user: u\ncurrent-context: t\n\
             users:\n- name: u\n  user:\n    token: recorded\n"
        ),
    )
    .unwrap();
    let sink = Sink::start(Mode::Accept);
    // Directories named like the kubelet does: <ns>_<pod>_<uid>.
    let mk = |ns: &str, pod: &str, uid: &str, c: &str| {
        let dir = root.path().join(format!("{ns}_{pod}_{uid}")).join(c);
        std::fs::create_dir_all(&dir).unwrap();
        Container {
            dir,
            ns: ns.into(),
            pod: pod.into(),
            uid: uid.into(),
            name: c.into(),
        }
    };
    let web = mk(
        "shop",
        "web-7d9f8b6c5-x2x4q",
        "0b7c6a0e-1111-4d7e-9a55-3c2f7f0c1a01",
        "nginx",
    );
    let db = mk(
        "shop",
        "db-0",
        "0b7c6a0e-2222-4d7e-9a55-3c2f7f0c1a02",
        "postgres",
    );
    let job = mk(
        "batch",
        "job-runner-abcde",
        "0b7c6a0e-3333-4d7e-9a55-3c2f7f0c1a03",
        "main",
    );
    let other = mk(
        "misc",
        "unknown-pod",
        "0b7c6a0e-9999-4d7e-9a55-3c2f7f0c1a09",
        "c",
    );
    // Every container already has a log file (so the deleted pod has files still being read).
    for c in [&web, &db, &job, &other] {
        c.write("stdout", &["start".to_string()]);
    }
    let kc = kubeconfig.display().to_string();
    let agent = kube_agent(root.path(), state.path(), &sink, &kc);
    // List (2 pods) + watch (1 added, 1 deleted but kept: its files are still there).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(agent.metric("outrigger_agent_kube_pods") == Some(3.0)
        && agent.metric("outrigger_agent_kube_deleted_pods") == Some(1.0))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "metadata not synced; requests {:?}; agent log:\n{}",
            seen.lock().unwrap(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    web.write("stdout", &["GET / 200".to_string()]);
    db.write("stdout", &["checkpoint complete".to_string()]);
    job.write("stderr", &["running".to_string()]);
    other.write("stdout", &["no metadata".to_string()]);
    wait_for("8 entries", 20, || sink.count() >= 8);
    let got = sink.entries();
    let by_line = |l: &str| got.iter().find(|e| e.line == l).unwrap().clone();
    let w = by_line("GET / 200");
    assert_eq!(w.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(w.meta.get("workload").map(String::as_str), Some("web"));
    let d = by_line("checkpoint complete");
    assert_eq!(
        d.labels.get("app").map(String::as_str),
        Some("postgres"),
        "deleted pod keeps metadata"
    );
    assert_eq!(d.meta.get("workload").map(String::as_str), Some("db"));
    let j = by_line("running");
    assert_eq!(j.labels.get("app").map(String::as_str), Some("runner"));
    assert_eq!(
        j.meta.get("workload").map(String::as_str),
        Some("job-runner")
    );
    let o = by_line("no metadata");
    assert!(!o.labels.contains_key("app"));
    assert_eq!(o.labels.get("pod").map(String::as_str), Some("unknown-pod"));
    let uris = seen.lock().unwrap().clone();
    assert!(
        uris.iter().all(|u| u.starts_with("/api/v1/pods?")
            && u.contains("fieldSelector=spec.nodeName%3Dnode-a")),
        "{uris:?}"
    );
    assert!(
        uris.iter().any(|u| u.contains("resourceVersion=0")),
        "list from the watch cache: {uris:?}"
    );
    assert!(uris.iter().any(|u| u.contains("watch=true")), "{uris:?}");
    // The deleted pod's metadata goes once its files are gone and fully read.
    std::fs::remove_dir_all(root.path().join(format!("shop_db-0_{}", db.uid))).unwrap();
    wait_for("deleted pod dropped", 30, || {
        agent.metric("outrigger_agent_kube_deleted_pods") == Some(0.0)
    });
    assert_eq!(agent.metric("outrigger_agent_kube_pods"), Some(2.0));
    let _ = Duration::ZERO;
}

use outrigger_test_support::KubeTestEnv;

fn create_pod(
    kube: &KubeTestEnv,
    ns: &str,
    name: &str,
    node: &str,
    labels: &str,
    owner: &str,
) -> String {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{labels}{owner}}},"spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    );
    let (code, v) = kube.api(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        Some(&body),
    );
    assert_eq!(code, 201, "create pod {name}: {v}");
    v["metadata"]["uid"].as_str().unwrap().to_string()
}

/// The same flow against a real kube-apiserver (TLS, client certificate auth, real list/watch
/// semantics), when the toolchain provides one.
#[test]
fn pod_metadata_from_real_kube_apiserver() {
    if outrigger_test_support::require_tool("kube-apiserver").is_none() {
        return;
    }
    let Some(kube) = KubeTestEnv::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (code, v) = kube.api(
        "POST",
        "/api/v1/namespaces",
        Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#),
    );
    assert_eq!(code, 201, "{v}");
    let rs_owner = r#","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d8c7f9b4","uid":"11111111-2222-3333-4444-555555555555","controller":true}]"#;
    let web_uid = create_pod(
        &kube,
        "shop",
        "web-5d8c7f9b4-abcde",
        "node-a",
        r#"{"app.kubernetes.io/name":"web","pod-template-hash":"5d8c7f9b4"}"#,
        rs_owner,
    );
    let far_uid = create_pod(&kube, "shop", "elsewhere", "node-b", r#"{"app":"far"}"#, "");
    let root = tmp.path().join("pods");
    let state = tmp.path().join("state");
    let mk = |pod: &str, uid: &str| {
        let dir = root.join(format!("shop_{pod}_{uid}")).join("c");
        std::fs::create_dir_all(&dir).unwrap();
        let c = Container {
            dir,
            ns: "shop".into(),
            pod: pod.into(),
            uid: uid.into(),
            name: "c".into(),
        };
        c.write("stdout", &["start".to_string()]);
        c
    };
    let web = mk("web-5d8c7f9b4-abcde", &web_uid);
    let far = mk("elsewhere", &far_uid);
    std::fs::create_dir_all(&state).unwrap();
    let sink = Sink::start(Mode::Accept);
    let agent = kube_agent(&root, &state, &sink, &kube.kubeconfig().to_string_lossy());
    // Only node-a's pod is listed (field selector).
    wait_for("list", 30, || {
        agent.metric("outrigger_agent_kube_pods") == Some(1.0)
    });
    // A pod created later arrives through the watch.
    let late_uid = create_pod(&kube, "shop", "late", "node-a", r#"{"app":"late"}"#, "");
    let late = mk("late", &late_uid);
    wait_for("watch ADDED", 30, || {
        agent.metric("outrigger_agent_kube_pods") == Some(2.0)
    });
    web.write("stdout", &["hello web".to_string()]);
    far.write("stdout", &["hello far".to_string()]);
    late.write("stdout", &["hello late".to_string()]);
    wait_for("entries", 20, || sink.count() >= 6);
    let find = |l: &str| sink.entries().into_iter().find(|e| e.line == l).unwrap();
    let w = find("hello web");
    assert_eq!(w.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(w.meta.get("workload").map(String::as_str), Some("web"));
    assert!(!find("hello far").labels.contains_key("app"));
    assert_eq!(
        find("hello late").labels.get("app").map(String::as_str),
        Some("late")
    );
    // Delete the web pod in the API: kept while its files are still there.
    let (code, v) = kube.api(
        "DELETE",
        "/api/v1/namespaces/shop/pods/web-5d8c7f9b4-abcde?gracePeriodSeconds=0",
        None,
    );
    assert!(code == 200 || code == 202, "{code} {v}");
    wait_for("watch DELETED", 30, || {
        agent.metric("outrigger_agent_kube_deleted_pods") == Some(1.0)
    });
    web.write("stdout", &["after delete".to_string()]);
    wait_for("after delete", 20, || {
        sink.entries().iter().any(|e| e.line == "after delete")
    });
    assert_eq!(
        find("after delete").labels.get("app").map(String::as_str),
        Some("web")
    );
    std::fs::remove_dir_all(web.dir.parent().unwrap()).unwrap();
    wait_for("drained pod forgotten", 30, || {
        agent.metric("outrigger_agent_kube_deleted_pods") == Some(0.0)
    });
    assert_eq!(agent.metric("outrigger_agent_kube_pods"), Some(1.0));
}
