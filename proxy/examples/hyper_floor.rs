//! The floor of the stack outrigger-proxy is built on: a hyper HTTP/1.1 server whose every
//! inbound connection forwards over its own `hyper::client::conn::http1` connection to the app,
//! with nothing else (no header rewriting, limits, retries, timeouts, metrics or draining).
//! `bench/proxy.sh` runs it as the "hyper-floor" variant, so the table shows what the proxy's
//! features cost on top of hyper and what hyper itself costs against nginx.
//!
//! Usage: `hyper_floor LISTEN APP`, e.g. `hyper_floor 127.0.0.1:18446 127.0.0.1:18081`
//! (one tokio worker, like `outrigger-proxy --workers 1`).

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
    let usage = "usage: hyper_floor LISTEN APP";
    let listen: SocketAddr = args.next().context(usage)?.parse().context(usage)?;
    let app: SocketAddr = args.next().context(usage)?.parse().context(usage)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(serve(listen, app))
}

async fn serve(listen: SocketAddr, app: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = connection(client, app).await {
                eprintln!("hyper_floor: {e:#}");
            }
        });
    }
}

async fn connection(client: TcpStream, app: SocketAddr) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(app).await?;
    upstream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(conn);
    // HTTP/1 requests on one connection are sequential; the lock is never contended.
    let sender = Arc::new(Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
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
