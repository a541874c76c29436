//! End-to-end tests: the real `outrigger-agent` binary against kubelet-style files in a temp root
//! and an in-test HTTP sink that decodes what it receives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::many_single_char_names
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use common::{Agent, Container, Mode, Rig, Sink, agent_cmd, lines_of, msgs, per_stream, wait_for};
use outrigger_test_support::cli::usage_error;

#[test]
fn ships_every_line_once_in_order_with_labels_protobuf() {
    let rig = Rig::new(Mode::Accept);
    let a = rig.container("shop", "web-7d9f-abcde", "nginx");
    let b = rig.container("shop", "web-7d9f-abcde", "sidecar");
    let c = rig.container("kube-system", "dns-1", "coredns");
    a.write("stdout", &msgs("a-out", 0..100));
    let agent = rig.agent(&["--loki-tenant", "team-a"]);
    a.write("stderr", &msgs("a-err", 0..50));
    b.write("stdout", &msgs("b-out", 0..70));
    // Partial lines: stdout fragments interleaved with a full stderr line.
    c.write_partial("stdout", &["first ", "second ", "third"]);
    c.write("stderr", &["err between".to_string()]);
    c.write_partial("stdout", &["solo"]);
    // Malformed line: shipped raw and counted.
    c.write_raw(b"this is not CRI\n");
    // Docker json-file line in the same file (format detected per line).
    c.write_raw(
        br#"{"log":"docker says hi\n","stream":"stdout","time":"2024-01-02T03:04:05.000000006Z"}"#,
    );
    c.write_raw(b"\n");
    wait_for("all entries", 30, || rig.sink.count() >= 100 + 50 + 70 + 5);
    std::thread::sleep(Duration::from_millis(500));
    let got = rig.sink.entries();
    assert_eq!(got.len(), 225, "exactly once");
    let ps = per_stream(&got);
    assert_eq!(
        ps[&("web-7d9f-abcde".into(), "nginx".into(), "stdout".into())],
        msgs("a-out", 0..100)
    );
    assert_eq!(
        ps[&("web-7d9f-abcde".into(), "nginx".into(), "stderr".into())],
        msgs("a-err", 0..50)
    );
    assert_eq!(
        ps[&("web-7d9f-abcde".into(), "sidecar".into(), "stdout".into())],
        msgs("b-out", 0..70)
    );
    assert_eq!(
        ps[&("dns-1".into(), "coredns".into(), "stdout".into())],
        vec!["first second third", "solo", "docker says hi"]
    );
    assert_eq!(
        ps[&("dns-1".into(), "coredns".into(), "stderr".into())],
        vec!["err between"]
    );
    assert_eq!(
        ps[&("dns-1".into(), "coredns".into(), "unknown".into())],
        vec!["this is not CRI"]
    );
    let e = got.iter().find(|e| e.line == "err between").unwrap();
    let want: BTreeMap<String, String> = [
        ("container", "coredns"),
        ("namespace", "kube-system"),
        ("node", "node-a"),
        ("pod", "dns-1"),
        ("stream", "stderr"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(e.labels, want);
    assert_eq!(e.meta.get("pod_uid").map(String::as_str), Some("uid-dns-1"));
    assert_eq!(e.meta.get("restart_count").map(String::as_str), Some("0"));
    let d = got.iter().find(|e| e.line == "docker says hi").unwrap();
    assert_eq!(d.ts_ns, 1_704_164_645_000_000_006);
    let m = got.iter().find(|e| e.line == "this is not CRI").unwrap();
    assert_eq!(m.meta.get("malformed").map(String::as_str), Some("true"));
    let st = rig.sink.state.lock().unwrap();
    assert!(st.tenants.iter().all(|t| t.as_deref() == Some("team-a")));
    assert!(
        st.content_types
            .iter()
            .all(|c| c == "application/x-protobuf")
    );
    drop(st);
    assert_eq!(
        agent.metric("outrigger_agent_malformed_lines_total{format=\"cri\"}"),
        Some(1.0)
    );
    assert_eq!(
        agent.metric("outrigger_agent_lines_sent_total{sink=\"loki\"}"),
        Some(225.0)
    );
}

#[test]
fn json_encoding_and_rotation_by_rename_and_gzip() {
    let rig = Rig::new(Mode::Accept);
    let c = rig.app_with("rot-1", &msgs("r", 0..200));
    let _agent = rig.agent(&["--loki-encoding", "json"]);
    wait_for("first 200", 20, || rig.sink.count() >= 200);
    // Rotation: rename while the runtime still writes a few lines to the old handle.
    let r1 = c.rotate("20240101-000001");
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&r1).unwrap();
        writeln!(
            f,
            "{} stdout F {}",
            common::rfc3339_now(),
            msgs("r", 200..201)[0]
        )
        .unwrap();
    }
    c.write("stdout", &msgs("r", 201..400));
    wait_for("400", 20, || rig.sink.count() >= 400);
    // Next rotation: the previous rotated file gets gzipped, a new one appears.
    c.gzip(&r1);
    let _r2 = c.rotate("20240101-000002");
    c.write("stdout", &msgs("r", 400..600));
    wait_for("600", 20, || rig.sink.count() >= 600);
    std::thread::sleep(Duration::from_millis(1500));
    let got = rig.sink.entries();
    assert_eq!(lines_of(&got, &c, "stdout"), msgs("r", 0..600));
    assert!(
        rig.sink
            .state
            .lock()
            .unwrap()
            .content_types
            .iter()
            .all(|c| c == "application/json")
    );
    let e = &got[0];
    assert_eq!(e.labels.get("namespace").map(String::as_str), Some("ns"));
    assert_eq!(e.labels.get("node").map(String::as_str), Some("node-a"));
    assert_eq!(e.labels.get("stream").map(String::as_str), Some("stdout"));
    assert_eq!(e.meta.get("pod_uid").map(String::as_str), Some("uid-rot-1"));
    assert!(e.ts_ns > 1_600_000_000_000_000_000);
}

#[test]
fn copytruncate_rotation_loses_nothing() {
    let rig = Rig::new(Mode::Accept);
    let c = rig.app_with("ct-1", &msgs("t", 0..100));
    let _agent = rig.agent(&[]);
    wait_for("100", 20, || rig.sink.count() >= 100);
    c.write("stdout", &msgs("t", 100..150));
    c.copytruncate("20240101-000001");
    c.write("stdout", &msgs("t", 150..250));
    wait_for("250", 20, || rig.sink.count() >= 250);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rig.lines(&c, "stdout"), msgs("t", 0..250));
}

#[test]
fn thousand_containers() {
    let rig = Rig::new(Mode::Accept);
    let mk = |i: usize| {
        Container::new(
            rig.root(),
            "load",
            &format!("pod-{}", i / 2),
            &format!("c{}", i % 2),
        )
    };
    let mut cs: Vec<Container> = (0..500).map(mk).collect();
    for (i, c) in cs.iter().enumerate() {
        c.write("stdout", &msgs(&format!("c{i}"), 0..10));
    }
    let agent = rig.agent(&[]);
    // The other half (new pod directories, new files) appears while running: inotify discovery.
    cs.extend((500..1000).map(mk));
    for (i, c) in cs.iter().enumerate().skip(500) {
        c.write("stdout", &msgs(&format!("c{i}"), 0..10));
    }
    wait_for("10k lines", 60, || rig.sink.count() >= 10_000);
    std::thread::sleep(Duration::from_millis(500));
    let got = rig.sink.entries();
    assert_eq!(got.len(), 10_000);
    let ps = per_stream(&got);
    assert_eq!(ps.len(), 1000);
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(
            ps[&(c.pod.clone(), c.name.clone(), "stdout".into())],
            msgs(&format!("c{i}"), 0..10)
        );
    }
    // Gauges are published with each checkpoint (every second).
    wait_for("open_files gauge", 10, || {
        agent.metric("outrigger_agent_open_files") == Some(1000.0)
    });
}

#[test]
fn drained_backlog_tail_is_sent_at_once_but_a_trickle_waits_for_the_batch() {
    let rig = Rig::new(Mode::Accept);
    let c = rig.container("ns", "backlog", "app");
    // A backlog of many small batches whose last one is only partly filled.
    c.write("stdout", &msgs("b", 0..3000));
    let agent = rig.agent(&[
        "--batch-max-bytes",
        "16384",
        "--batch-max-wait-ms",
        "600000",
    ]);
    // With a 10-minute batch wait, the tail only arrives if catching up sends it.
    wait_for("the whole backlog", 60, || rig.sink.count() >= 3000);
    assert!(
        rig.sink.requests() >= 3000 * 50 / 16384,
        "sent in several batches"
    );
    // Less than a batch after catching up is a trickle: it waits for the batch wait (or, here,
    // the SIGTERM flush).
    c.write("stdout", &msgs("b", 3000..3005));
    wait_for("trickle read", 20, || {
        agent.metric("outrigger_agent_lines_read_total") == Some(3005.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rig.sink.count(), 3000);
    assert_eq!(agent.sigterm().code(), Some(0));
    rig.assert_exactly(&c, "stdout", &msgs("b", 0..3005));
}

#[test]
fn small_buffer_below_one_read_still_ships_everything() {
    let rig = Rig::new(Mode::Accept);
    let c = rig.app_with("tiny", &msgs("t", 0..500));
    // The smallest buffer the configuration accepts for 1000-byte batches.
    let _agent = rig.agent(&["--batch-max-bytes", "1000", "--max-buffer-bytes", "2000"]);
    wait_for("every line", 60, || rig.sink.count() >= 500);
    rig.assert_exactly(&c, "stdout", &msgs("t", 0..500));
}

#[test]
fn otlp_sink_with_k8s_resource_attributes() {
    let rig = Rig::new(Mode::Accept);
    let loki = Sink::start(Mode::Accept);
    let c = rig.container("shop", "api-1", "server");
    c.write("stderr", &msgs("o", 0..20));
    let _agent = Agent::spawn(
        rig.root(),
        rig.state(),
        &[
            "--otlp-logs-url",
            &rig.sink.otlp_url(),
            "--loki-url",
            &loki.loki_url(),
        ],
    );
    wait_for("otlp", 20, || rig.sink.count() >= 20 && loki.count() >= 20);
    let got = rig.sink.entries();
    assert_eq!(
        got.iter().map(|g| g.line.clone()).collect::<Vec<_>>(),
        msgs("o", 0..20)
    );
    let g = &got[0];
    for (k, v) in [
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "api-1"),
        ("k8s.pod.uid", "uid-api-1"),
        ("k8s.container.name", "server"),
        ("k8s.container.restart_count", "0"),
        ("k8s.node.name", "node-a"),
        ("log.iostream", "stderr"),
    ] {
        assert_eq!(g.labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(g.ts_ns > 1_600_000_000_000_000_000);
}

#[test]
fn bad_config_exits_64_with_one_line() {
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--loki-url", "not a url"],
        vec![
            "--loki-url",
            "http://x/push",
            "--log-root",
            "/nonexistent/dir",
        ],
        vec!["--loki-url", "http://x/push", "--metrics", "nope"],
        vec!["--loki-url", "http://x/push", "--loki-encoding", "xml"],
        vec!["--unknown-flag"],
    ];
    let root = tempfile::tempdir().unwrap();
    for args in cases {
        usage_error(agent_cmd(root.path()).args(&args), &format!("{args:?}"));
    }
    let help = common::agent_help();
    for flag in [
        "--log-root",
        "OUTRIGGER_LOG_ROOT",
        "--state-dir",
        "--loki-url",
        "--loki-encoding",
        "--loki-tenant",
        "--otlp-logs-url",
        "--metrics",
        "--node-name",
        "NODE_NAME",
        "--kube-metadata",
        "--host-root",
        "OUTRIGGER_HOST_ROOT",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
