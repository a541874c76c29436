//! The real binary over real TLS: AdmissionReviews in, JSONPatches out; bad input gets clean
//! 4xx; bad configuration exits 64; certificates hot-reload; SIGTERM drains and exits 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    clippy::float_cmp
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Injector, Pki, http_get, https, review, sample, scrape};
use outrigger_test_support::{assert_promtool_clean, require_tool, skip};
use serde_json::{Value, json};

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {
            "terminationGracePeriodSeconds": 40,
            "containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 8000}]}],
        }
    })
}

fn response(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

fn decode_patch(resp: &Value) -> Value {
    assert_eq!(resp["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// POSTs the AdmissionReview `uid` for `pod` to the webhook's `path`; expects 200 and returns
/// the review's response.
async fn admit(inj: &Injector, ca: &Path, path: &str, uid: &str, pod: &Value) -> Value {
    let (status, body) = https(inj.webhook, ca, "POST", path, review(uid, pod)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    response(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injects_over_tls_and_counts() {
    let pki = Pki::new();
    let inj = Injector::start(
        &pki,
        &["--proxy-image", "registry.test/outrigger-proxy:9.9.9"],
    );
    let ca = pki.path("ca.pem");

    // Opted-in pod: patched.
    let p = pod(json!({"outrigger.io/inject": "enabled"}));
    let resp = admit(&inj, &ca, "/mutate", "uid-1", &p).await;
    assert_eq!(resp["uid"], "uid-1");
    assert_eq!(resp["allowed"], true);
    let patch = decode_patch(&resp);
    let mut doc = p.clone();
    json_patch::patch(
        &mut doc,
        &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
    )
    .unwrap();
    let sidecar = &doc["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "outrigger-proxy");
    assert_eq!(sidecar["image"], "registry.test/outrigger-proxy:9.9.9");
    assert_eq!(sidecar["restartPolicy"], "Always");
    let env = sidecar["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "OUTRIGGER_APP", "value": "127.0.0.1:8000"})));
    assert!(env.contains(&json!({"name": "OUTRIGGER_TERMINATION_GRACE_PERIOD", "value": "40"})));
    assert_eq!(
        doc["metadata"]["annotations"]["outrigger.io/injected"],
        env!("CARGO_PKG_VERSION")
    );

    // The patched pod again (reinvocation): allowed, no patch.
    let resp = admit(&inj, &ca, "/mutate", "uid-2", &doc).await;
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none(), "{resp}");

    // Not annotated on the pod-opt-in path: untouched; on the namespace path: injected.
    let plain = pod(json!({}));
    let resp = admit(&inj, &ca, "/mutate", "uid-3", &plain).await;
    assert!(resp.get("patch").is_none());
    decode_patch(&admit(&inj, &ca, "/mutate/namespace", "uid-4", &plain).await);
    // Opt-out wins in namespace mode.
    let out = pod(json!({"outrigger.io/inject": "disabled"}));
    let resp = admit(&inj, &ca, "/mutate/namespace", "uid-5", &out).await;
    assert!(resp.get("patch").is_none());

    // Our own error (bad app-port annotation): still allowed, unmodified, counted as error.
    let bad = pod(json!({"outrigger.io/inject": "enabled", "outrigger.io/app-port": "http"}));
    let resp = admit(&inj, &ca, "/mutate", "uid-6", &bad).await;
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none());

    // A pod object that is not a Pod (containers is a string): allowed, error counted.
    let broken = json!({"metadata": {"name": "x"}, "spec": {"containers": "nope"}});
    let resp = admit(&inj, &ca, "/mutate", "uid-7", &broken).await;
    assert_eq!(resp["allowed"], true);

    let text = scrape(inj.admin);
    let m = |s: &str| sample(&text, s).unwrap_or(0.0);
    for (result, reason, want) in [
        ("injected", "none", 2.0),
        ("skipped", "already_injected", 1.0),
        ("skipped", "not_enabled", 1.0),
        ("skipped", "disabled", 1.0),
        ("error", "bad_app_port", 1.0),
        ("error", "bad_object", 1.0),
    ] {
        let series = format!(
            "outrigger_injector_admissions_total{{result=\"{result}\",reason=\"{reason}\"}}"
        );
        assert_eq!(m(&series), want, "{series}\n{text}");
    }
    assert_eq!(
        m("outrigger_injector_admission_duration_seconds_count"),
        7.0
    );
    assert!(text.contains(&format!(
        "outrigger_injector_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

/// The exposition passes Debian's `promtool check metrics` (after real traffic, so every
/// family has samples).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_promtool_clean() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let pki = Pki::new();
    let inj = Injector::start(&pki, &[]);
    let ca = pki.path("ca.pem");
    let ok = review("uid-m", &pod(json!({"outrigger.io/inject": "enabled"})));
    assert_eq!(https(inj.webhook, &ca, "POST", "/mutate", ok).await.0, 200);
    assert_eq!(
        https(inj.webhook, &ca, "POST", "/mutate", b"x".to_vec())
            .await
            .0,
        400
    );
    let text = scrape(inj.admin);
    assert_promtool_clean(&promtool, &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clean_4xx() {
    let pki = Pki::new();
    let inj = Injector::start(&pki, &["--max-body", "65536"]);
    let ca = pki.path("ca.pem");

    // Not JSON, not an AdmissionReview, the old API version, no request.
    let v1beta1 =
        json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}});
    let no_request = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    for body in [
        b"{not json".to_vec(),
        b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}".to_vec(),
        serde_json::to_vec(&v1beta1).unwrap(),
        serde_json::to_vec(&no_request).unwrap(),
    ] {
        let (s, _) = https(inj.webhook, &ca, "POST", "/mutate", body.clone()).await;
        assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    }
    // Oversized (declared Content-Length over --max-body).
    let big = review(
        "uid-big",
        &json!({"metadata": {"name": "x", "annotations": {"a": "x".repeat(100_000)}}}),
    );
    let (s, _) = https(inj.webhook, &ca, "POST", "/mutate", big).await;
    assert_eq!(s, 413);
    let (s, _) = https(inj.webhook, &ca, "GET", "/mutate", Vec::new()).await;
    assert_eq!(s, 405);
    let (s, _) = https(inj.webhook, &ca, "POST", "/elsewhere", Vec::new()).await;
    assert_eq!(s, 404);

    // Broken TLS (plain HTTP on the TLS port): dropped, counted, server keeps working.
    {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(inj.webhook).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    let ok = review("uid-ok", &pod(json!({"outrigger.io/inject": "enabled"})));
    let (s, _) = https(inj.webhook, &ca, "POST", "/mutate", ok).await;
    assert_eq!(s, 200);

    let text = scrape(inj.admin);
    assert_eq!(
        sample(
            &text,
            r#"outrigger_injector_requests_rejected_total{reason="malformed"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"outrigger_injector_requests_rejected_total{reason="too_large"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "outrigger_injector_tls_handshake_errors_total"),
        Some(1.0)
    );
}

#[test]
fn streamed_oversized_body_is_413() {
    // No Content-Length (chunked): the limit applies while reading. The body is 30 times the
    // limit, so a server that stops reading at the limit and closes the connection leaves
    // megabytes unread in its socket: the close is then a reset, and curl reports 000, every run.
    let pki = Pki::new();
    let inj = Injector::start(&pki, &["--max-body", "65536"]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args([
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", "@-"])
        .arg(format!("https://127.0.0.1:{}/mutate", inj.webhook.port()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            let mut stdin = c.stdin.take().unwrap();
            let _ = stdin.write_all(&vec![b' '; 2_000_000]);
            drop(stdin);
            c.wait_with_output()
        });
    match out {
        Ok(o) => assert_eq!(String::from_utf8_lossy(&o.stdout), "413"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("curl not installed");
        }
        Err(e) => panic!("curl: {e}"),
    }
}

/// Runs the injector with `args` and `env`, expecting the bad-configuration exit (64); its
/// stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(common::bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{args:?} {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_configuration_exits_64_before_binding() {
    let pki = Pki::new();
    // The --listen port stays bound by the test throughout: an injector that tried to bind
    // before validating would exit 1 ("binding --listen ...: address in use"), not 64 with the
    // bad setting's name. (Releasing the port and re-binding it afterwards raced with the
    // other tests of this binary, which open ephemeral ports in parallel.)
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (pki.path("tls.crt"), pki.path("tls.key"));
    let valid = [
        "--listen",
        &listen,
        "--admin",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    for (extra, needle) in [
        (["--proxy-memory-limit", "lots"], "--proxy-memory-limit"),
        (["--proxy-pull-policy", "Sometimes"], "--proxy-pull-policy"),
        (["--log", "=["], "--log"),
    ] {
        let err = refused(&[&valid[..], &extra[..]].concat(), &[]);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    // Missing certificate file.
    let err = refused(
        &[
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
        ],
        &[],
    );
    assert!(err.contains("--tls-cert"), "{err}");
    // Env twin.
    refused(
        &["--tls-cert", "c", "--tls-key", "k"],
        &[("OUTRIGGER_INJECTOR_LISTEN", "not-an-address")],
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_and_graceful_shutdown() {
    let pki = Pki::new();
    let mut inj = Injector::start(&pki, &[]);
    let ca = pki.path("ca.pem");
    let peer_cn = |addr| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("{addr}"),
                "-servername",
                "localhost",
            ])
            .stdin(std::process::Stdio::null())
            .output();
        out.ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let before = peer_cn(inj.webhook);
    pki.write_leaf("rotated-cert");
    if let Some(before) = before {
        assert!(
            before.contains("CN=outrigger-injector") || before.contains("CN = outrigger-injector"),
            "{before}"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = peer_cn(inj.webhook).unwrap();
            if now.contains("rotated-cert") {
                break;
            }
            assert!(Instant::now() < deadline, "certificate not reloaded: {now}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = scrape(inj.admin);
        assert_eq!(
            sample(
                &text,
                r#"outrigger_injector_tls_cert_reloads_total{result="success"}"#
            ),
            Some(1.0),
            "{text}"
        );
    } else {
        skip("openssl not installed (rotation check)");
    }
    // A broken certificate file is rejected; the loaded certificate stays in use.
    std::fs::write(pki.path("tls.crt"), "not a certificate\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(inj.admin);
        if sample(
            &text,
            r#"outrigger_injector_tls_cert_reloads_total{result="error"}"#,
        ) == Some(1.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broken certificate not noticed: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = review("uid-b", &pod(json!({"outrigger.io/inject": "enabled"})));
    assert_eq!(https(inj.webhook, &ca, "POST", "/mutate", ok).await.0, 200);
    pki.write_leaf("third-cert");
    // Still serving with the new certificate.
    let ok = review("uid-r", &pod(json!({"outrigger.io/inject": "enabled"})));
    let (s, _) = https(inj.webhook, &ca, "POST", "/mutate", ok).await;
    assert_eq!(s, 200);
    assert_eq!(http_get(inj.admin, "/ready").0, 200);
    assert_eq!(http_get(inj.admin, "/live").0, 200);
    assert_eq!(inj.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_but_keeps_serving_for_the_delay() {
    let pki = Pki::new();
    let mut inj = Injector::start(&pki, &["--shutdown-delay", "3s"]);
    let ca = pki.path("ca.pem");
    assert_eq!(http_get(inj.admin, "/ready").0, 200);
    let pid = inj.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    // Readiness flips at once (hang guard only: a few seconds at most).
    let deadline = Instant::now() + Duration::from_secs(3);
    while http_get(inj.admin, "/ready").0 != 503 {
        assert!(Instant::now() < deadline, "/ready never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... while reviews are still answered during the delay.
    let ok = review("uid-drain", &pod(json!({"outrigger.io/inject": "enabled"})));
    let (s, body) = https(inj.webhook, &ca, "POST", "/mutate", ok).await;
    assert_eq!(s, 200);
    decode_patch(&response(&body));
    assert!(
        inj.child.try_wait().unwrap().is_none(),
        "exited before the delay"
    );
    assert_eq!(inj.terminate(), Some(0));
}
