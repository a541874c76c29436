//! The gateway's lifecycle: a table update that adds and removes a port, SIGTERM drain of the
//! real binary, and the command line (`gateway --help`, a bad routes file exits 64).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{Gateway, TO_SVC, backend, simple};
use common::{App, binary, free_addr, free_port, get, h1_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_update_binds_a_new_port_and_drains_a_removed_one() {
    let app = App::start().await;
    let (p1, p2) = (free_port(), free_port());
    let gw = Gateway::start(&simple(p1, TO_SVC, &backend(&[app.addr])), &[]).await;
    let slow =
        tokio::spawn(
            async move { get(&h1_client(), &format!("http://127.0.0.1:{p1}/slow/800")).await },
        );
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.publish(&simple(p2, TO_SVC, &backend(&[app.addr])));

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((status, _, _)) = get(&h1_client(), &format!("http://127.0.0.1:{p2}/hello")).await
        {
            assert_eq!(status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "the new port never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", p1))
            .await
            .is_err(),
        "the removed port still accepts"
    );
    let (status, _, _) = slow.await.unwrap().unwrap();
    assert_eq!(
        status, 200,
        "the in-flight request on the removed port finished"
    );
    assert!(
        gw.metrics()
            .await
            .contains("outrigger_gateway_table_updates_total 2")
    );
    assert_eq!(gw.stop().await, outrigger_proxy::drain::Outcome::Graceful);
}

fn admin_status(admin: std::net::SocketAddr, path: &str) -> Option<u16> {
    outrigger_test_support::metrics::http_get(admin, path).map(|(s, _)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_gateway_and_exits_0() {
    let app = App::start().await;
    let port = free_port();
    let admin = free_addr();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), simple(port, TO_SVC, &backend(&[app.addr]))).unwrap();
    let mut child = Command::new(binary())
        .args([
            "gateway",
            "--bind-address",
            "127.0.0.1",
            "--admin",
            &admin.to_string(),
        ])
        .arg("--routes-file")
        .arg(file.path())
        .args(["--drain-delay", "500ms", "--drain-timeout", "5s"])
        .env_remove("OUTRIGGER_TERMINATION_GRACE_PERIOD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::task::spawn_blocking(move || admin_status(admin, "/ready"))
        .await
        .unwrap()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "gateway not ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let slow = tokio::spawn(async move {
        get(&h1_client(), &format!("http://127.0.0.1:{port}/slow/1200")).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = tokio::task::spawn_blocking(move || admin_status(admin, "/ready"))
        .await
        .unwrap();
    assert_eq!(ready, Some(503), "draining gateways are not ready");
    let (status, _, _) = slow.await.unwrap().unwrap();
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "{code:?}");
}

#[test]
fn bad_flags_and_a_bad_routes_file_exit_64_naming_them_and_help_documents_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("routes.json");
    for (content, says) in [
        (None, "cannot read it"),
        (Some("{ not json"), "not a valid routes file"),
        (
            Some(r#"{"ports":[{"port":80,"protocol":"UDP","listeners":[]}]}"#),
            "UDP",
        ),
    ] {
        if let Some(c) = content {
            std::fs::write(&bad, c).unwrap();
        }
        let out = Command::new(binary())
            .args(["gateway", "--admin", "127.0.0.1:0", "--routes-file"])
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains("--routes-file") && err.contains(says), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let out = Command::new(binary())
        .args(["gateway", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--bind-address", "OUTRIGGER_GATEWAY_BIND_ADDRESS"),
        ("--admin", "OUTRIGGER_GATEWAY_ADMIN"),
        ("--routes-file", "OUTRIGGER_GATEWAY_ROUTES_FILE"),
        ("--eject-after", "OUTRIGGER_GATEWAY_EJECT_AFTER"),
        ("--ejection", "OUTRIGGER_GATEWAY_EJECTION"),
        ("--max-ejection", "OUTRIGGER_GATEWAY_MAX_EJECTION"),
        ("--drain-delay", "OUTRIGGER_DRAIN_DELAY"),
        ("--header-read-timeout", "OUTRIGGER_HEADER_READ_TIMEOUT"),
        ("--connect-timeout", "OUTRIGGER_CONNECT_TIMEOUT"),
        ("--request-timeout", "OUTRIGGER_REQUEST_TIMEOUT"),
        ("--retry-attempts", "OUTRIGGER_RETRY_ATTEMPTS"),
        ("--log", "OUTRIGGER_LOG"),
        ("--controller-name", "OUTRIGGER_GATEWAY_CONTROLLER_NAME"),
        ("--namespace", "OUTRIGGER_GATEWAY_NAMESPACE"),
        ("--pod-selector", "OUTRIGGER_GATEWAY_POD_SELECTOR"),
        ("--internal-ports", "OUTRIGGER_GATEWAY_INTERNAL_PORTS"),
        ("--gateway-service-type", "OUTRIGGER_GATEWAY_SERVICE_TYPE"),
        (
            "--gateway-service-external-traffic-policy",
            "OUTRIGGER_GATEWAY_SERVICE_EXTERNAL_TRAFFIC_POLICY",
        ),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(help.contains(&format!("env: {env}")), "--help lacks {env}");
    }
    assert!(help.contains("--gateway-service-annotation"));
    // The managed Services' flags are validated before anything starts.
    for (flag, value) in [
        ("--internal-ports", "20000-10000"),
        ("--internal-ports", "0-100"),
        ("--pod-selector", "no-value"),
        ("--gateway-service-type", "ExternalName"),
        ("--gateway-service-annotation", "=x"),
    ] {
        let out = Command::new(binary())
            .args(["gateway", "--admin", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_is_counted_and_the_others_serve() {
    let app = App::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let free = free_port();
    let json = format!(
        r#"{{"ports":[
            {{"port":{busy},"listeners":[{{"name":"busy","virtualHosts":[{{"rules":{TO_SVC}}}]}}]}},
            {{"port":{free},"listeners":[{{"name":"free","virtualHosts":[{{"rules":{TO_SVC}}}]}}]}}],
          "backends":{}}}"#,
        backend(&[app.addr])
    );
    let gw = Gateway::start(&json, &[]).await;
    let (status, _, _) = get(&h1_client(), &format!("http://127.0.0.1:{free}/hello"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let m = gw.metrics().await;
    assert!(
        m.contains(&format!(
            "outrigger_gateway_bind_errors_total{{port=\"{busy}\"}} 1"
        )),
        "{m}"
    );
}
