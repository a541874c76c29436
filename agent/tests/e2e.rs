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

use common::{Agent, Container, Mode, Sink, per_stream, wait_for};

fn msgs(tag: &str, r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| format!("{tag} line {i:06} {}", "x".repeat(40)))
        .collect()
}

#[test]
fn ships_every_line_once_in_order_with_labels_protobuf() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let a = Container::new(root.path(), "shop", "web-7d9f-abcde", "nginx");
    let b = Container::new(root.path(), "shop", "web-7d9f-abcde", "sidecar");
    let c = Container::new(root.path(), "kube-system", "dns-1", "coredns");
    a.write("stdout", &msgs("a-out", 0..100));
    let agent = Agent::spawn(
        root.path(),
        state.path(),
        &["--loki-url", &sink.loki_url(), "--loki-tenant", "team-a"],
    );
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
    wait_for("all entries", 30, || sink.count() >= 100 + 50 + 70 + 5);
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.entries();
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
    let st = sink.state.lock().unwrap();
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
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "rot-1", "app");
    c.write("stdout", &msgs("r", 0..200));
    let _agent = Agent::spawn(
        root.path(),
        state.path(),
        &["--loki-url", &sink.loki_url(), "--loki-encoding", "json"],
    );
    wait_for("first 200", 20, || sink.count() >= 200);
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
    wait_for("400", 20, || sink.count() >= 400);
    // Next rotation: the previous rotated file gets gzipped, a new one appears.
    c.gzip(&r1);
    let _r2 = c.rotate("20240101-000002");
    c.write("stdout", &msgs("r", 400..600));
    wait_for("600", 20, || sink.count() >= 600);
    std::thread::sleep(Duration::from_millis(1500));
    let got = sink.entries();
    let ps = per_stream(&got);
    assert_eq!(
        ps[&("rot-1".into(), "app".into(), "stdout".into())],
        msgs("r", 0..600)
    );
    assert!(
        sink.state
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
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "ct-1", "app");
    c.write("stdout", &msgs("t", 0..100));
    let _agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    wait_for("100", 20, || sink.count() >= 100);
    c.write("stdout", &msgs("t", 100..150));
    c.copytruncate("20240101-000001");
    c.write("stdout", &msgs("t", 150..250));
    wait_for("250", 20, || sink.count() >= 250);
    std::thread::sleep(Duration::from_secs(1));
    let ps = per_stream(&sink.entries());
    assert_eq!(
        ps[&("ct-1".into(), "app".into(), "stdout".into())],
        msgs("t", 0..250)
    );
}

#[test]
fn thousand_containers() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let mk = |i: usize| {
        Container::new(
            root.path(),
            "load",
            &format!("pod-{}", i / 2),
            &format!("c{}", i % 2),
        )
    };
    let mut cs: Vec<Container> = (0..500).map(mk).collect();
    for (i, c) in cs.iter().enumerate() {
        c.write("stdout", &msgs(&format!("c{i}"), 0..10));
    }
    let agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    // The other half (new pod directories, new files) appears while running: inotify discovery.
    cs.extend((500..1000).map(mk));
    for (i, c) in cs.iter().enumerate().skip(500) {
        c.write("stdout", &msgs(&format!("c{i}"), 0..10));
    }
    wait_for("10k lines", 60, || sink.count() >= 10_000);
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.entries();
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

/// Writes lines continuously while the agent is killed with SIGKILL at random points and
/// restarted: nothing may be lost; duplicates only from batches in flight at a kill.
#[test]
fn kill_9_at_random_points_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let cs: Vec<Container> = (0..20)
        .map(|i| Container::new(root.path(), "k9", &format!("p{i}"), "app"))
        .collect();
    let total_per = 600u32;
    let writer = {
        let dirs: Vec<(usize, std::path::PathBuf)> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.dir.clone()))
            .collect();
        std::thread::spawn(move || {
            for step in 0..(total_per / 20) {
                for (i, d) in &dirs {
                    let c = Container {
                        dir: d.clone(),
                        ns: String::new(),
                        pod: String::new(),
                        uid: String::new(),
                        name: String::new(),
                    };
                    c.write("stdout", &msgs(&format!("k{i}"), step * 20..step * 20 + 20));
                    if step == 10 {
                        // One rotation in the middle.
                        if *i == 0 && !d.join("0.log.20240101-000001").exists() {
                            c.rotate("20240101-000001");
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut kills = 0;
    for _ in 0..5 {
        let agent = Agent::spawn(
            root.path(),
            state.path(),
            &[
                "--loki-url",
                &sink.loki_url(),
                "--checkpoint-interval-ms",
                "50",
                "--batch-max-bytes",
                "4096",
            ],
        );
        std::thread::sleep(Duration::from_millis(fastrand::u64(100..700)));
        agent.kill9();
        kills += 1;
    }
    writer.join().unwrap();
    let agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    let expected_total = (total_per as usize) * 20;
    wait_for("all lines after restarts", 60, || {
        let ps = per_stream(&sink.entries());
        ps.values()
            .map(|v| {
                let mut s = v.clone();
                s.sort();
                s.dedup();
                s.len()
            })
            .sum::<usize>()
            >= expected_total
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.entries();
    let ps = per_stream(&got);
    let mut dups = 0;
    for (i, c) in cs.iter().enumerate() {
        let v = &ps[&(c.pod.clone(), "app".into(), "stdout".into())];
        // Order: first occurrences are in write order.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<String> = v
            .iter()
            .filter(|l| seen.insert((*l).clone()))
            .cloned()
            .collect();
        assert_eq!(
            firsts,
            msgs(&format!("k{i}"), 0..total_per),
            "container {i}: lost or reordered"
        );
        dups += v.len() - firsts.len();
    }
    eprintln!(
        "kill -9 x{kills}: {} entries received for {expected_total} lines, {dups} duplicates",
        got.len()
    );
    // Duplicates come only from batches in flight at each kill (batch cap 4 KiB ≈ 50 lines,
    // 20 files): bounded by kills × one batch per file.
    assert!(dups <= kills * 20 * 60, "too many duplicates: {dups}");
    drop(agent);
}

fn outage_secs() -> u64 {
    std::env::var("OUTRIGGER_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Sink answers 503 for a long outage while logs keep coming; memory stays bounded (small
/// buffer), reading pauses, and after recovery every line arrives exactly once.
#[test]
fn long_503_outage_loses_nothing() {
    let secs = outage_secs();
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Status(503));
    let c = Container::new(root.path(), "ns", "outage", "app");
    let agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--loki-url",
            &sink.loki_url(),
            "--max-buffer-bytes",
            "262144",
            "--batch-max-bytes",
            "65536",
            "--retry-max-ms",
            "2000",
        ],
    );
    let start = std::time::Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        c.write("stdout", &msgs("o", n..n + 200));
        n += 200;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sink.count(), 0);
    assert!(
        agent
            .metric("outrigger_agent_send_errors_total{sink=\"loki\",kind=\"http_5xx\"}")
            .unwrap()
            > 0.0
    );
    assert!(
        agent
            .metric("outrigger_agent_retries_total{sink=\"loki\"}")
            .unwrap()
            > 0.0
    );
    assert!(agent.metric("outrigger_agent_lag_bytes").unwrap() > 0.0);
    assert!(agent.metric("outrigger_agent_lag_seconds").unwrap() > 0.0);
    sink.set_mode(Mode::Accept);
    wait_for("recovery", 60, || sink.count() >= n as usize);
    std::thread::sleep(Duration::from_millis(500));
    let ps = per_stream(&sink.entries());
    assert_eq!(
        ps[&("outage".into(), "app".into(), "stdout".into())],
        msgs("o", 0..n),
        "exactly once, in order"
    );
    eprintln!("{secs}s outage: {n} lines delivered after recovery");
}

#[test]
fn http_400_is_counted_not_retried_forever() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Status(400));
    let c = Container::new(root.path(), "ns", "bad", "app");
    c.write("stdout", &msgs("b", 0..10));
    let agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    wait_for("rejected", 20, || {
        agent.metric("outrigger_agent_rejected_lines_total{sink=\"loki\"}") == Some(10.0)
    });
    let reqs = sink.requests();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.requests(), reqs, "a 400 is not retried");
    // The rejected lines were acknowledged: a restart does not send them again.
    assert_eq!(agent.sigterm().code(), Some(0));
    sink.set_mode(Mode::Accept);
    c.write("stdout", &msgs("b", 10..12));
    let _agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    wait_for("new lines", 20, || sink.count() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let ps = per_stream(&sink.entries());
    assert_eq!(
        ps[&("bad".into(), "app".into(), "stdout".into())],
        msgs("b", 10..12)
    );
}

#[test]
fn retry_after_is_honoured_on_429() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::RetryAfter {
        status: 429,
        secs: 2,
        n: 1,
    });
    let c = Container::new(root.path(), "ns", "ra", "app");
    c.write("stdout", &msgs("q", 0..5));
    let agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    wait_for("delivered", 20, || sink.count() >= 5);
    let st = sink.state.lock().unwrap();
    assert_eq!(st.request_times.len(), 2);
    let gap = st.request_times[1] - st.request_times[0];
    // Retry-After: 2 beats the 50 ms backoff configured for the test.
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    drop(st);
    assert_eq!(
        agent.metric("outrigger_agent_send_errors_total{sink=\"loki\",kind=\"http_429\"}"),
        Some(1.0)
    );
}

#[test]
fn sigterm_flushes_and_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "term", "app");
    c.write("stdout", &msgs("s", 0..300));
    // Long batch wait: the lines sit in a batch until SIGTERM flushes them.
    let agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--loki-url",
            &sink.loki_url(),
            "--batch-max-wait-ms",
            "60000",
        ],
    );
    wait_for("read", 20, || {
        agent.metric("outrigger_agent_lines_read_total") == Some(300.0)
    });
    assert_eq!(sink.count(), 0);
    assert_eq!(agent.sigterm().code(), Some(0));
    assert_eq!(sink.count(), 300);
    let cp: serde_json::Value =
        serde_json::from_slice(&fs::read(state.path().join("checkpoints.json")).unwrap()).unwrap();
    let size = fs::metadata(c.live()).unwrap().len();
    assert_eq!(cp["files"][0]["offset"].as_u64(), Some(size));
    // Restart: nothing is shipped twice.
    let _agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    c.write("stdout", &msgs("s", 300..301));
    wait_for("one more", 20, || sink.count() >= 301);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.count(), 301);
}

#[test]
fn drained_backlog_tail_is_sent_at_once_but_a_trickle_waits_for_the_batch() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "backlog", "app");
    // A backlog of many small batches whose last one is only partly filled.
    c.write("stdout", &msgs("b", 0..3000));
    let agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--loki-url",
            &sink.loki_url(),
            "--batch-max-bytes",
            "16384",
            "--batch-max-wait-ms",
            "600000",
        ],
    );
    // With a 10-minute batch wait, the tail only arrives if catching up sends it.
    wait_for("the whole backlog", 60, || sink.count() >= 3000);
    assert!(
        sink.requests() >= 3000 * 50 / 16384,
        "sent in several batches"
    );
    // Less than a batch after catching up is a trickle: it waits for the batch wait (or, here,
    // the SIGTERM flush).
    c.write("stdout", &msgs("b", 3000..3005));
    wait_for("trickle read", 20, || {
        agent.metric("outrigger_agent_lines_read_total") == Some(3005.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.count(), 3000);
    assert_eq!(agent.sigterm().code(), Some(0));
    let got = sink.entries();
    assert_eq!(got.len(), 3005, "exactly once");
    let ps = per_stream(&got);
    assert_eq!(
        ps[&("backlog".into(), "app".into(), "stdout".into())],
        msgs("b", 0..3005)
    );
}

#[test]
fn small_buffer_below_one_read_still_ships_everything() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "tiny", "app");
    c.write("stdout", &msgs("t", 0..500));
    // The smallest buffer the configuration accepts for 1000-byte batches.
    let _agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--loki-url",
            &sink.loki_url(),
            "--batch-max-bytes",
            "1000",
            "--max-buffer-bytes",
            "2000",
        ],
    );
    wait_for("every line", 60, || sink.count() >= 500);
    let got = sink.entries();
    assert_eq!(got.len(), 500, "exactly once");
    assert_eq!(
        per_stream(&got)[&("tiny".into(), "app".into(), "stdout".into())],
        msgs("t", 0..500)
    );
}

#[test]
fn otlp_sink_with_k8s_resource_attributes() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let loki = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "shop", "api-1", "server");
    c.write("stderr", &msgs("o", 0..20));
    let _agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--otlp-logs-url",
            &sink.otlp_url(),
            "--loki-url",
            &loki.loki_url(),
        ],
    );
    wait_for("otlp", 20, || sink.count() >= 20 && loki.count() >= 20);
    let got = sink.entries();
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
        let out = std::process::Command::new(common::agent_bin())
            .env("OUTRIGGER_STATE_DIR", root.path())
            .env("OUTRIGGER_LOG_ROOT", root.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
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

/// Once delivered, offsets are checkpointed without any further traffic or shutdown, so a
/// `kill -9` while idle repeats nothing.
#[test]
fn idle_checkpoint_after_delivery_means_no_duplicates_after_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let c = Container::new(root.path(), "ns", "idle", "app");
    c.write("stdout", &msgs("i", 0..50));
    let agent = Agent::spawn(
        root.path(),
        state.path(),
        &[
            "--loki-url",
            &sink.loki_url(),
            "--checkpoint-interval-ms",
            "100",
        ],
    );
    wait_for("50", 20, || sink.count() >= 50);
    let size = fs::metadata(c.live()).unwrap().len();
    wait_for("checkpoint at end of file", 20, || {
        fs::read(state.path().join("checkpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["files"][0]["offset"].as_u64())
            == Some(size)
    });
    assert!(
        agent
            .metric("outrigger_agent_checkpoint_age_seconds")
            .unwrap()
            < 5.0
    );
    wait_for("lag 0", 10, || {
        agent.metric("outrigger_agent_lag_bytes") == Some(0.0)
    });
    agent.kill9();
    c.write("stdout", &msgs("i", 50..60));
    let _agent = Agent::spawn(root.path(), state.path(), &["--loki-url", &sink.loki_url()]);
    wait_for("60", 20, || sink.count() >= 60);
    std::thread::sleep(Duration::from_millis(500));
    let ps = per_stream(&sink.entries());
    assert_eq!(
        ps[&("idle".into(), "app".into(), "stdout".into())],
        msgs("i", 0..60)
    );
}
