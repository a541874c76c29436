//! One duration syntax and one worker-count range across the binaries, end to end: every drain
//! duration and worker count the real injector accepts is written into the sidecar container it
//! renders, and the real proxy started with that container's environment accepts it; every value
//! the injector refuses (exit 64) is refused by the proxy too (exit 64), so no setting can make
//! every injected proxy fail to start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Injector, Pki, injected_sidecar};
use outrigger_test_support::{Daemon, free_addr};
use serde_json::json;

/// The proxy binary of this workspace, built on demand: cargo gives a test only its own
/// package's binaries, and this test needs the other daemon.
fn proxy_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "outrigger-proxy",
            "--bin",
            "outrigger-proxy",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p outrigger-proxy failed");
    let bin =
        PathBuf::from(env!("CARGO_BIN_EXE_outrigger-injector")).with_file_name("outrigger-proxy");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// The sidecar's env as the injector renders it for a pod that opts in.
async fn rendered_env(inj: &Injector, pki: &Pki) -> Vec<(String, String)> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {"outrigger.io/inject": "enabled"}},
        "spec": {
            "terminationGracePeriodSeconds": 40,
            "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8000}]}],
        },
    });
    let sidecar = &injected_sidecar(inj.webhook, &pki.path("ca.pem"), &pod).await;
    assert_eq!(sidecar["name"], "outrigger-proxy");
    assert!(
        sidecar.get("args").is_none(),
        "the proxy is configured by env only"
    );
    sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The proxy with `env`, its listeners moved to free loopback ports (the rendered 0.0.0.0 ports
/// are the pod's).
fn proxy_command(bin: &PathBuf, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--inbound", &free_addr().to_string()]);
    cmd
}

/// Starts the proxy with `env` and waits until it serves its admin port: up means the
/// configuration was accepted, since a refused one exits 64 before binding.
fn assert_proxy_starts(proxy: &PathBuf, env: &[(String, String)], what: &str) {
    let admin = free_addr();
    let mut cmd = proxy_command(proxy, env);
    cmd.args(["--admin", &admin.to_string()]);
    let mut running = Daemon::spawn(&mut cmd);
    running.wait_for_port(admin, Duration::from_secs(20));
    assert!(
        running
            .stderr_lines()
            .iter()
            .all(|l| !l.contains("invalid configuration")),
        "{what}: {:?}",
        running.stderr_lines()
    );
}

/// Each of `values` is refused by both binaries with exit 64: by the injector in `injector_var`
/// (a line naming it), and by the proxy in `proxy_var` (one line naming `setting`).
fn assert_both_refuse(values: &[&str], injector_var: &str, proxy_var: &str, setting: &str) {
    let proxy = proxy_binary();
    let pki = Pki::new();
    for value in values {
        let out = Command::new(env!("CARGO_BIN_EXE_outrigger-injector"))
            .args(["--tls-cert", pki.path("tls.crt").to_str().unwrap()])
            .args(["--tls-key", pki.path("tls.key").to_str().unwrap()])
            .args([
                "--listen",
                &free_addr().to_string(),
                "--admin",
                &free_addr().to_string(),
            ])
            .env(injector_var, value)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "injector took {injector_var}={value:?}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(injector_var), "{err}");

        let env = vec![(proxy_var.to_owned(), (*value).to_owned())];
        let out = proxy_command(&proxy, &env)
            .args(["--admin", &free_addr().to_string()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "proxy took {proxy_var}={value:?}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(setting), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_the_injector_accepts_start_the_proxy() {
    let proxy = proxy_binary();
    let pki = Pki::new();
    for value in ["250ms", "1.5s", "2min", "1m30s", "0s", "1h", "45sec"] {
        let inj = Injector::start(
            &pki,
            &["--proxy-drain-delay", value, "--proxy-drain-timeout", value],
        );
        let env = rendered_env(&inj, &pki).await;
        for name in ["OUTRIGGER_DRAIN_DELAY", "OUTRIGGER_DRAIN_TIMEOUT"] {
            assert!(
                env.contains(&(name.to_owned(), value.to_owned())),
                "{name} in {env:?}"
            );
        }
        assert_proxy_starts(&proxy, &env, value);
    }
}

#[test]
fn durations_the_injector_refuses_are_refused_by_the_proxy() {
    assert_both_refuse(
        &["30", "1 0s", "soon", "2y", "-1s", "5S"],
        "OUTRIGGER_INJECTOR_PROXY_DRAIN_TIMEOUT",
        "OUTRIGGER_DRAIN_TIMEOUT",
        "--drain-timeout (OUTRIGGER_DRAIN_TIMEOUT)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_counts_the_injector_accepts_start_the_proxy() {
    let proxy = proxy_binary();
    let pki = Pki::new();
    for value in ["1", "3", "256", "auto"] {
        let inj = Injector::start(&pki, &["--proxy-workers", value]);
        let env = rendered_env(&inj, &pki).await;
        let workers: Vec<_> = env
            .iter()
            .filter(|(k, _)| k == "OUTRIGGER_WORKERS")
            .collect();
        if value == "auto" {
            assert!(
                workers.is_empty(),
                "auto leaves the count to the proxy: {env:?}"
            );
        } else {
            assert_eq!(
                workers,
                [&("OUTRIGGER_WORKERS".to_owned(), value.to_owned())]
            );
        }
        assert_proxy_starts(&proxy, &env, value);
    }
}

#[test]
fn worker_counts_the_injector_refuses_are_refused_by_the_proxy() {
    assert_both_refuse(
        &["0", "257", "-1", "1.5", "two", "65536"],
        "OUTRIGGER_INJECTOR_PROXY_WORKERS",
        "OUTRIGGER_WORKERS",
        "--workers (OUTRIGGER_WORKERS)",
    );
}
