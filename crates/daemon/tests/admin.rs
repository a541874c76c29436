//! The admin listener over a real socket: probes, content negotiation, refusals.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outrigger_daemon::admin::{Admin, serve, unless_draining};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Fake {
    ready: AtomicBool,
    registry: Registry,
}

impl Admin for Fake {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        unless_draining(!self.ready.load(Ordering::Relaxed))
    }
    fn metrics(&self) -> String {
        outrigger_daemon::metrics::encode(&self.registry)
    }
}

async fn request(addr: std::net::SocketAddr, head: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn probes_metrics_and_refusals() {
    let mut registry = Registry::with_prefix("fake");
    let c = Counter::<u64>::default();
    c.inc_by(7);
    registry.register("events", "Events seen", c);
    let fake = Arc::new(Fake {
        ready: AtomicBool::new(true),
        registry,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, fake.clone()));
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n")
    };

    let live = request(addr, &get("/live", "")).await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let ready = request(addr, &get("/ready", "")).await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
    fake.ready.store(false, Ordering::Relaxed);
    let ready = request(addr, &get("/ready", "")).await;
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.ends_with("draining\n"),
        "{ready}"
    );

    let classic = request(addr, &get("/metrics", "")).await;
    assert!(
        classic.contains("content-type: text/plain; version=0.0.4"),
        "{classic}"
    );
    assert!(
        classic.contains("# TYPE fake_events_total counter\n"),
        "{classic}"
    );
    assert!(classic.contains("\nfake_events_total 7\n"), "{classic}");
    assert!(!classic.contains("# EOF"), "{classic}");
    let om = request(
        addr,
        &get(
            "/metrics",
            "accept: application/openmetrics-text; version=1.0.0\r\n",
        ),
    )
    .await;
    assert!(
        om.contains("content-type: application/openmetrics-text"),
        "{om}"
    );
    assert!(om.contains("# TYPE fake_events counter\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");

    let post = request(
        addr,
        "POST /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let missing = request(addr, &get("/nope", "")).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    server.abort();
}
