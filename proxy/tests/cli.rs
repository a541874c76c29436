//! The binary's command-line contract: `--help` documents every flag and env var; a bad setting
//! exits 64 with one line naming it, before any port is bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::binary());
    cmd.args(args)
        .env_remove("OUTRIGGER_TERMINATION_GRACE_PERIOD")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn help_documents_every_flag_and_env_var() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--inbound", "OUTRIGGER_INBOUND"),
        ("--app", "OUTRIGGER_APP"),
        ("--admin", "OUTRIGGER_ADMIN"),
        ("--tls-cert", "OUTRIGGER_TLS_CERT"),
        ("--tls-key", "OUTRIGGER_TLS_KEY"),
        ("--client-ca", "OUTRIGGER_CLIENT_CA"),
        ("--drain-delay", "OUTRIGGER_DRAIN_DELAY"),
        ("--drain-timeout", "OUTRIGGER_DRAIN_TIMEOUT"),
        ("--workers", "OUTRIGGER_WORKERS"),
        ("--header-read-timeout", "OUTRIGGER_HEADER_READ_TIMEOUT"),
        ("--connect-timeout", "OUTRIGGER_CONNECT_TIMEOUT"),
        ("--request-timeout", "OUTRIGGER_REQUEST_TIMEOUT"),
        ("--idle-timeout", "OUTRIGGER_IDLE_TIMEOUT"),
        ("--max-header-bytes", "OUTRIGGER_MAX_HEADER_BYTES"),
        ("--max-headers", "OUTRIGGER_MAX_HEADERS"),
        ("--max-body-bytes", "OUTRIGGER_MAX_BODY_BYTES"),
        ("--retry-attempts", "OUTRIGGER_RETRY_ATTEMPTS"),
        ("--retry-max-body", "OUTRIGGER_RETRY_MAX_BODY"),
        ("--retry-budget-ratio", "OUTRIGGER_RETRY_BUDGET_RATIO"),
        (
            "--retry-budget-min-per-sec",
            "OUTRIGGER_RETRY_BUDGET_MIN_PER_SEC",
        ),
        ("--retry-backoff", "OUTRIGGER_RETRY_BACKOFF"),
        ("--access-log", "OUTRIGGER_ACCESS_LOG"),
        ("--drain-token", "OUTRIGGER_PROXY_DRAIN_TOKEN"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(help.contains(&format!("env: {env}")), "--help lacks {env}");
    }
    for extra in [
        "OUTRIGGER_TERMINATION_GRACE_PERIOD",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "GET /drain",
        "X-Outrigger-Drain-Token",
    ] {
        assert!(help.contains(extra), "--help lacks {extra}");
    }
    // The token's value never appears in --help (clap would print it as the env's value).
    let token = "secret-token-0123456789";
    let out = run(&["--help"], &[("OUTRIGGER_PROXY_DRAIN_TOKEN", token)]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(token));
    // A too-short token from the environment is refused with the usual one line.
    let out = run(&[], &[("OUTRIGGER_PROXY_DRAIN_TOKEN", "short")]);
    assert_usage_error(&out, "OUTRIGGER_PROXY_DRAIN_TOKEN");
}

fn assert_usage_error(out: &Output, names: &str) {
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one line, got {stderr:?}");
    assert!(
        lines[0].contains(names),
        "{:?} does not name {names}",
        lines[0]
    );
}

#[test]
fn bad_configuration_exits_64_before_binding() {
    // Hold the inbound port: had the proxy tried to bind first, it would fail differently.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inbound = held.local_addr().unwrap().to_string();
    let out = run(&["--inbound", &inbound, "--drain-delay", "5 parsecs"], &[]);
    assert_usage_error(&out, "--drain-delay");

    let out = run(
        &["--inbound", &inbound],
        &[("OUTRIGGER_APP", "not an address")],
    );
    assert_usage_error(&out, "OUTRIGGER_APP");
    let out = run(
        &["--inbound", &inbound],
        &[("OUTRIGGER_TERMINATION_GRACE_PERIOD", "soon")],
    );
    assert_usage_error(&out, "OUTRIGGER_TERMINATION_GRACE_PERIOD");
    let out = run(
        &[
            "--inbound",
            &inbound,
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
        &[],
    );
    assert_usage_error(&out, "--tls-cert");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let j = junk.to_str().unwrap();
    let out = run(
        &["--inbound", &inbound, "--tls-cert", j, "--tls-key", j],
        &[],
    );
    assert_usage_error(&out, "--tls-cert");
    let out = run(
        &["--inbound", &inbound],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
    );
    assert_usage_error(&out, "OTEL_EXPORTER_OTLP_ENDPOINT");
    let out = run(&["--inbound", &inbound, "--max-headers", "lots"], &[]);
    assert_usage_error(&out, "--max-headers");
    let out = run(&["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn port_in_use_is_a_runtime_error_not_a_usage_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inbound = held.local_addr().unwrap().to_string();
    let admin = common::free_addr().to_string();
    let out = run(&["--inbound", &inbound, "--admin", &admin], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binding --inbound"));
}
