//! HTTPS sinks: the real agent binary against an in-test Loki sink behind a real TLS handshake
//! (tokio-rustls server, certificates from the shared test PKI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{Mode, Rig, Sink, agent_cmd, msgs, wait_for};
use outrigger_test_support::Pki;
use outrigger_test_support::cli::usage_error;

/// The shared test PKI plus `other-ca.pem`, an unrelated CA: what the agent trusts in the
/// negative test.
fn sink_pki() -> Pki {
    let pki = Pki::new();
    fs::write(
        pki.path("other-ca.pem"),
        outrigger_test_support::pki::new_ca("some other CA").pem(),
    )
    .unwrap();
    pki
}

/// The Loki sink's server config: a certificate for 127.0.0.1/localhost from the test CA.
fn loki_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    pki.server_config("loki", &[b"http/1.1"])
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn ships_every_line_once_over_https_with_extra_ca() {
    let pki = sink_pki();
    let rig = Rig::with_sink(Sink::start_tls(Mode::Accept, loki_tls(&pki)));
    assert!(rig.sink.loki_url().starts_with("https://127.0.0.1:"));
    let c = rig.container("shop", "web-1", "nginx");
    c.write("stdout", &msgs("tls", 0..500));
    let agent = rig.agent(&["--sink-ca-file", p(&pki.path("ca.pem"))]);
    c.write("stderr", &msgs("tls-err", 0..200));
    wait_for("700 lines over TLS", 30, || rig.sink.count() >= 700);
    assert_eq!(agent.sigterm().code(), Some(0));
    assert_eq!(rig.lines(&c, "stdout"), msgs("tls", 0..500));
    assert_eq!(rig.lines(&c, "stderr"), msgs("tls-err", 0..200));
    assert_eq!(rig.sink.count(), 700, "every line exactly once");
    assert_eq!(rig.sink.tls_failures(), 0);
}

#[test]
fn untrusted_server_is_a_send_error_and_loses_nothing() {
    let pki = sink_pki();
    let rig = Rig::with_sink(Sink::start_tls(Mode::Accept, loki_tls(&pki)));
    let c = rig.app_with("pod-a", &msgs("u", 0..100));
    // Trusts only the system store and an unrelated CA (the explicit CA keeps the test
    // independent of whether this machine's system store is empty).
    let agent = rig.agent(&[
        "--sink-ca-file",
        p(&pki.path("other-ca.pem")),
        "--checkpoint-interval-ms",
        "100",
        "--shutdown-timeout-secs",
        "1",
    ]);
    let errors = "outrigger_agent_send_errors_total{sink=\"loki\",kind=\"tls\"}";
    wait_for("failed handshakes counted", 30, || {
        agent.metric(errors).unwrap_or(0.0) >= 2.0 && rig.sink.tls_failures() >= 2
    });
    assert_eq!(
        rig.sink.count(),
        0,
        "nothing delivered to an untrusted server"
    );
    assert_eq!(rig.sink.requests(), 0);
    assert!(
        agent.metric("outrigger_agent_lines_read_total") == Some(100.0),
        "lines were read"
    );
    agent.sigterm();
    assert_eq!(
        rig.checkpoint_offset().unwrap_or(0),
        0,
        "checkpoint did not advance"
    );
    // Restarted with the right CA, the same lines arrive, once.
    let agent = rig.agent(&["--sink-ca-file", p(&pki.path("ca.pem"))]);
    wait_for("delivered after restart", 30, || rig.sink.count() >= 100);
    assert_eq!(agent.sigterm().code(), Some(0));
    rig.assert_exactly(&c, "stdout", &msgs("u", 0..100));
}

#[test]
fn bad_tls_files_exit_64_with_one_line() {
    let pki = sink_pki();
    let root = tempfile::tempdir().unwrap();
    fs::write(pki.path("garbage.pem"), "not a certificate\n").unwrap();
    let ca = pki.path("ca.pem");
    let missing = pki.path("missing.pem");
    let garbage = pki.path("garbage.pem");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--sink-ca-file", p(&missing)], "--sink-ca-file"),
        (vec!["--sink-ca-file", p(&garbage)], "--sink-ca-file"),
        (
            vec!["--sink-client-cert", p(&ca)],
            "--sink-client-cert and --sink-client-key",
        ),
        (
            vec![
                "--sink-client-cert",
                p(&ca),
                "--sink-client-key",
                p(&missing),
            ],
            "--sink-client-key",
        ),
        (vec!["--loki-url", "ftp://x/push"], "https://"),
    ];
    let cmd = || {
        let mut cmd = agent_cmd(root.path());
        cmd.env("OUTRIGGER_LOKI_URL", "https://127.0.0.1:1/loki/api/v1/push");
        cmd
    };
    for (args, needle) in cases {
        let err = usage_error(
            cmd().env("OUTRIGGER_KUBE_METADATA", "off").args(&args),
            &format!("{args:?}"),
        );
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // The same settings from the environment.
    let err = usage_error(cmd().env("OUTRIGGER_SINK_CA_FILE", &missing), "env");
    assert!(err.contains("missing.pem"));
}

#[test]
fn mtls_client_certificate_is_presented() {
    let pki = sink_pki();
    pki.write_leaf("client", "outrigger-agent");
    let rig = Rig::with_sink(Sink::start_tls(
        Mode::Accept,
        pki.mtls_server_config("loki", &[b"http/1.1"]),
    ));
    let c = rig.app_with("pod-m", &msgs("m", 0..50));
    // Without a client certificate the server refuses the handshake: nothing delivered.
    let agent = rig.agent(&[
        "--sink-ca-file",
        p(&pki.path("ca.pem")),
        "--shutdown-timeout-secs",
        "1",
    ]);
    wait_for("refused handshakes", 30, || rig.sink.tls_failures() >= 2);
    assert_eq!(rig.sink.count(), 0);
    agent.sigterm();
    // With it (flags from the environment this time), everything arrives once.
    let agent = rig.agent_env(
        &[],
        &[
            ("OUTRIGGER_SINK_CA_FILE", p(&pki.path("ca.pem"))),
            ("OUTRIGGER_SINK_CLIENT_CERT", p(&pki.path("client.pem"))),
            ("OUTRIGGER_SINK_CLIENT_KEY", p(&pki.path("client.key"))),
        ],
    );
    wait_for("delivered with mTLS", 30, || rig.sink.count() >= 50);
    assert_eq!(agent.sigterm().code(), Some(0));
    rig.assert_exactly(&c, "stdout", &msgs("m", 0..50));
}

/// `--help` documents every TLS flag and its environment variable.
#[test]
fn tls_flags_are_documented() {
    let help = common::agent_help();
    for s in [
        "--sink-ca-file",
        "OUTRIGGER_SINK_CA_FILE",
        "--sink-client-cert",
        "OUTRIGGER_SINK_CLIENT_CERT",
        "--sink-client-key",
        "OUTRIGGER_SINK_CLIENT_KEY",
    ] {
        assert!(help.contains(s), "{s} missing from --help");
    }
}
