//! Endpoint balancing over real sockets: endpoints turned not ready or terminating get no new
//! request while their in-flight one finishes, a connect failure is retried on another
//! endpoint, and failing endpoints are ejected, then come back when the ejection expires.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::gateway::{Gateway, TO_SVC, backend, dead_addr, simple};
use common::{App, free_port, get, h1_client, metric};

fn endpoints(list: &[(SocketAddr, bool, bool)]) -> String {
    let eps: Vec<String> = list
        .iter()
        .map(|(a, ready, terminating)| {
            format!(r#"{{"address":"{a}","ready":{ready},"terminating":{terminating}}}"#)
        })
        .collect();
    format!(
        r#"[{{"service":"ns/svc:80","endpoints":[{}]}}]"#,
        eps.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_leaving_gets_no_new_request_while_its_in_flight_one_completes() {
    let (a, b) = (App::start().await, App::start().await);
    let port = free_port();
    let json = |eps: &[(SocketAddr, bool, bool)]| simple(port, TO_SVC, &endpoints(eps));
    let gw = Gateway::start(&json(&[(a.addr, true, false), (b.addr, false, false)]), &[]).await;
    let url = format!("http://127.0.0.1:{port}");
    let slow = tokio::spawn({
        let url = url.clone();
        async move { get(&h1_client(), &format!("{url}/slow/1500")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.state.hits("/slow/1500"), 1, "the slow request is on a");

    for (ready, terminating) in [(false, false), (true, true)] {
        gw.publish(&json(&[
            (a.addr, ready, terminating),
            (b.addr, true, false),
        ]));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let client = h1_client();
        for _ in 0..20 {
            let (status, _, _) = get(&client, &format!("{url}/hello")).await.unwrap();
            assert_eq!(status, 200);
        }
    }
    assert_eq!(a.state.hits("/hello"), 0);
    assert_eq!(b.state.hits("/hello"), 40);
    let (status, _, body) = slow.await.unwrap().unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"slow done"[..]));
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "outrigger_gateway_backend_endpoints",
            &[r#"state="terminating""#]
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_on_another_endpoint() {
    let app = App::start().await;
    let port = free_port();
    // The dead endpoint is never measured, so its latency estimate (1 ms) stays below the live
    // one's (30 ms requests): the balancer keeps choosing it first, and each time the retry goes
    // to the live endpoint.
    let json = simple(port, TO_SVC, &backend(&[dead_addr(), app.addr]));
    let gw = Gateway::start(&json, &["--eject-after", "1000"]).await;
    let client = h1_client();
    for _ in 0..8 {
        let (status, _, _) = get(&client, &format!("http://127.0.0.1:{port}/slow/30"))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(app.state.hits("/slow/30"), 8);
    let m = gw.metrics().await;
    let retries = metric(
        &m,
        "outrigger_proxy_retries_total",
        &[r#"reason="connect_error""#],
    );
    assert!(retries >= 6.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoints_are_ejected_and_come_back_when_the_ejection_expires() {
    let app = App::start().await;
    let port = free_port();
    let json = simple(port, TO_SVC, &backend(&[dead_addr(), app.addr]));
    let args = [
        "--eject-after",
        "2",
        "--ejection",
        "500ms",
        "--retry-attempts",
        "0",
    ];
    let gw = Gateway::start(&json, &args).await;
    let client = h1_client();
    let url = format!("http://127.0.0.1:{port}/slow/30");
    let ejections = |m: &str| {
        metric(
            m,
            "outrigger_gateway_endpoint_ejections_total",
            &[r#"backend="ns/svc:80""#],
        )
    };

    let mut failures = 0;
    for _ in 0..10 {
        let (status, _, _) = get(&client, &url).await.unwrap();
        if status == 502 {
            failures += 1;
        }
        if failures == 2 {
            break;
        }
    }
    assert_eq!(failures, 2, "the dead endpoint was not chosen");
    let m = gw.metrics().await;
    assert_eq!(ejections(&m), 1.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "outrigger_gateway_backend_endpoints",
            &[r#"state="ejected""#]
        ),
        1.0,
        "{m}"
    );
    // Ejected: every request goes to the live endpoint.
    for _ in 0..10 {
        assert_eq!(get(&client, &url).await.unwrap().0, 200);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "outrigger_gateway_backend_endpoints",
            &[r#"state="ready""#]
        ),
        2.0,
        "{m}"
    );
    // Back in rotation (and preferred, being unmeasured): it fails again and is ejected again.
    let mut failures = 0;
    for _ in 0..10 {
        if get(&client, &url).await.unwrap().0 == 502 {
            failures += 1;
        }
        if failures == 2 {
            break;
        }
    }
    assert_eq!(failures, 2);
    assert_eq!(ejections(&gw.metrics().await), 2.0);
}
