//! Loki-compatible sink for `bench/agent.sh`: accepts `POST /loki/api/v1/push` with
//! snappy-compressed `logproto.PushRequest` (or JSON), decodes every request fully, answers 204,
//! and when it has received `--expect` entries writes the Unix time in nanoseconds to
//! `--done-file`. Usage: `bench_sink <listen addr> <expect> <done file>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use outrigger_agent::proto::logproto::PushRequest;
use prost::Message as _;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 4,
        "usage: bench_sink <addr> <expect> <done-file>"
    );
    let addr = args[1].clone();
    let expect: u64 = args[2].parse().unwrap();
    let done = args[3].clone();
    let count = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&addr).await.unwrap();
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (count, done) = (count.clone(), done.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (count, done) = (count.clone(), done.clone());
                    async move {
                        let json = req
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v.as_bytes() == b"application/json");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = if json {
                            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            v["streams"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|s| s["values"].as_array().unwrap().len() as u64)
                                .sum()
                        } else {
                            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                            let req = PushRequest::decode(raw.as_slice()).unwrap();
                            req.streams.iter().map(|s| s.entries.len() as u64).sum()
                        };
                        let total = count.fetch_add(n, Ordering::SeqCst) + n;
                        if total >= expect && total - n < expect {
                            let now = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .unwrap()
                                .as_nanos();
                            std::fs::write(&done, now.to_string()).unwrap();
                        }
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
}
