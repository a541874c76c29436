//! The floor of the stack outrigger-proxy is built on: a hyper HTTP/1.1 server whose every
//! inbound connection forwards over its own `hyper::client::conn::http1` connection to the app,
//! with nothing else (no header rewriting, limits, retries, timeouts, metrics or draining).
//! `bench/proxy.sh` runs it as the "hyper-floor" variant, so the table shows what the proxy's
//! features cost on top of hyper and what hyper itself costs against nginx.
//!
//! Usage: `hyper_floor LISTEN APP [TOUCH_BYTES]`, e.g.
//! `hyper_floor 127.0.0.1:18446 127.0.0.1:18081` (one tokio worker, like
//! `outrigger-proxy --workers 1`).
//!
//! `TOUCH_BYTES` (default 0) gives each connection that much state of its own, one byte per cache
//! line of it written per request: extra memory footprint per request and nothing else.
//! `bench/proxy-footprint.sh` uses it to measure what footprint alone costs in user and kernel
//! time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper_floor LISTEN APP [TOUCH_BYTES]";
    let listen: SocketAddr = args.next().context(usage)?.parse().context(usage)?;
    let app: SocketAddr = args.next().context(usage)?.parse().context(usage)?;
    let touch: usize = args.next().map_or(Ok(0), |t| t.parse()).context(usage)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(serve(listen, app, touch))
}

async fn serve(listen: SocketAddr, app: SocketAddr, touch: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = connection(client, app, touch).await {
                eprintln!("hyper_floor: {e:#}");
            }
        });
    }
}

async fn connection(client: TcpStream, app: SocketAddr, touch: usize) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(app).await?;
    upstream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(conn);
    // HTTP/1 requests on one connection are sequential; the lock is never contended.
    let sender = Arc::new(Mutex::new(sender));
    let state = Arc::new(std::sync::Mutex::new(vec![0u8; touch]));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        if touch > 0
            && let Ok(mut state) = state.lock()
        {
            for byte in state.iter_mut().step_by(64) {
                *byte = byte.wrapping_add(1);
            }
        }
        async move {
            let mut sender = sender.lock().await;
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(req).await,
                Err(e) => Err(e),
            };
            let response = if let Ok(resp) = sent {
                resp.map(Either::Left)
            } else {
                let mut bad = Response::new(Either::Right(Empty::<Bytes>::new()));
                *bad.status_mut() = StatusCode::BAD_GATEWAY;
                bad
            };
            Ok::<_, Infallible>(response)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}
