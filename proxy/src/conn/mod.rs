//! One inbound connection's life, from the protocol the listener chose to the socket's close:
//! per-connection facts and activity tracking ([`ConnTrack`], one [`Active`] per request), the
//! proxy's own HTTP/1.1 server codec (`h1`), and driving hyper's HTTP/2 connection through idle
//! timeouts and drain phases (`drive`). The request path (`forward.rs`) is plugged in as a
//! service taking an [`InBody`] request; this module does not know what it does with a request.

/// The `AsyncWrite` methods a wrapper around `inner` (a pinned field) passes through as they are:
/// the data writes; each wrapper writes its own `poll_flush` and `poll_shutdown`.
macro_rules! delegate_writes {
    () => {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_write(cx, buf)
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.project().inner.poll_write_vectored(cx, bufs)
        }
        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
    };
}
use delegate_writes;

mod body;
mod drive;
pub mod h1;
mod rewind;
pub use self::rewind::Rewind;
mod track;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::deadline::ConnTimer;
use crate::drain::Phase;
use crate::drain::Watcher;
use crate::metrics::{ConnLabels, Metrics, Protocol};
use crate::wake::OnOwnWake;

pub use self::body::{InBody, InBodyError};
use self::drive::drive;
pub use self::track::{Active, ConnTrack};

/// Per-connection facts the request path needs.
#[derive(Debug)]
pub struct ConnInfo {
    /// Client address.
    pub client: SocketAddr,
    /// The client address as an `X-Forwarded-For` element (formatted once per connection).
    pub forwarded_for: HeaderValue,
    /// TLS terminated here.
    pub tls: bool,
    /// Protocol of the connection.
    pub protocol: Protocol,
    /// Activity tracker.
    pub track: Arc<ConnTrack>,
    /// The connection's drain watcher; upgraded tunnels take a clone so the drain waits for them.
    pub drain: Watcher,
    /// The request timer its requests share (HTTP/1, whose requests come one at a time); HTTP/2
    /// streams time themselves.
    pub request_timer: Option<ConnTimer>,
}

/// Builds the service for one connection: any `Fn(Arc<ConnInfo>) -> service`.
pub trait MakeService {
    /// The response body.
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    /// The service.
    type Service: hyper::service::Service<
            Request<InBody>,
            Response = Response<Self::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Send
        + 'static;
    /// The service for `info`'s connection.
    fn make(&self, info: Arc<ConnInfo>) -> Self::Service;
}

impl<F, S, B> MakeService for F
where
    F: Fn(Arc<ConnInfo>) -> S,
    S: hyper::service::Service<Request<InBody>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Body = B;
    type Service = S;

    fn make(&self, info: Arc<ConnInfo>) -> S {
        self(info)
    }
}

/// What a connection serves with: the proxy's settings and metrics, and the service built for
/// each connection.
pub struct Serving<'a, M> {
    /// Validated configuration.
    pub cfg: &'a Config,
    /// Golden metrics.
    pub metrics: &'a Metrics,
    /// Builds the service for one connection.
    pub service: M,
}

/// Serves one accepted connection until it closes. `prefix`: bytes the listener already read
/// (the protocol sniff), read first.
pub async fn serve<IO, M>(
    io: IO,
    prefix: Bytes,
    protocol: Protocol,
    tls: bool,
    client: SocketAddr,
    serving: Serving<'_, M>,
    drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    M: MakeService,
{
    let labels = ConnLabels { protocol, tls };
    let metrics = serving.metrics;
    let cfg = serving.cfg;
    metrics.conn_opened(&labels);
    let track = ConnTrack::new();
    let info = Arc::new(ConnInfo {
        client,
        forwarded_for: crate::headers::forwarded_for(client.ip()),
        tls,
        protocol,
        track: track.clone(),
        drain: drain.clone(),
        request_timer: (protocol == Protocol::Http1).then(ConnTimer::default),
    });
    match protocol {
        Protocol::Http1 => {
            let forced = drain.clone();
            tokio::select! {
                () = h1::serve(io, prefix, &serving, info, drain) => {}
                // Dropped with whatever it was doing when the drain is forced.
                _ = OnOwnWake::new(reached(forced, Phase::Forced)) => {}
            }
        }
        Protocol::H2 => {
            let io = Rewind::new(prefix, io);
            // Boxed: the task's own allocation then stays small.
            let conn = Box::pin(
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(cfg.max_header_bytes as u32)
                    .max_concurrent_streams(256)
                    .serve_connection(TokioIo::new(io), H2Service(serving.service.make(info))),
            );
            drive(conn, cfg, &track, drain).await;
        }
    }
    metrics.conn_closed(&labels);
}

async fn reached(mut drain: Watcher, phase: Phase) -> Phase {
    drain.reached(phase).await
}

/// The request path as hyper's HTTP/2 service: its request bodies as [`InBody`].
struct H2Service<S>(S);

impl<S: hyper::service::Service<Request<InBody>>> hyper::service::Service<Request<Incoming>>
    for H2Service<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> S::Future {
        self.0.call(req.map(InBody::H2))
    }
}
