//! One inbound connection's life, from the protocol the listener chose to the socket's close:
//! per-connection facts and activity tracking ([`ConnTrack`], one [`Active`] per request), the
//! HTTP/1 header guard (`guard`), parking an idle HTTP/1 connection (`park`), and driving hyper's
//! connection through idle timeouts and drain phases (`drive`). The request path (`forward.rs`)
//! is plugged in as the hyper service; this module does not know what it does with a request.

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

mod drive;
mod guard;
mod park;
mod rewind;
pub use self::rewind::Rewind;
mod track;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::deadline::ConnTimer;
use crate::drain::Watcher;
use crate::metrics::{ConnLabels, Metrics, Protocol, ReasonLabels};

use self::drive::{Ended, drive};
use self::guard::HeadGuard;
use self::park::{next_park_after, park};
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

/// Builds the hyper service for one hyper connection: any `Fn(Arc<ConnInfo>) -> service`.
pub trait MakeService {
    /// The response body.
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    /// The service.
    type Service: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Self::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Send
        + 'static;
    /// The service for the hyper connection serving `info`'s connection.
    fn make(&self, info: Arc<ConnInfo>) -> Self::Service;
}

impl<F, S, B> MakeService for F
where
    F: Fn(Arc<ConnInfo>) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
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

/// What a connection serves with: the proxy's settings and metrics, and the hyper service built
/// for each hyper connection (an HTTP/1 connection gets a new one after every park).
pub struct Serving<'a, M> {
    /// Validated configuration.
    pub cfg: &'a Config,
    /// Golden metrics.
    pub metrics: &'a Metrics,
    /// Builds the service for one hyper connection.
    pub service: M,
}

/// Serves one accepted connection until it closes. `prefix`: bytes the listener already read
/// (the protocol sniff), replayed to hyper first.
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
    let io = Rewind::new(prefix, io);
    match protocol {
        Protocol::Http1 => {
            let timed_out = Arc::new(AtomicBool::new(false));
            let io = HeadGuard::new(
                io,
                track.clone(),
                cfg.header_read_timeout,
                timed_out.clone(),
            );
            serve_http1(io, &serving, info, &track, drain).await;
            if timed_out.load(Ordering::Acquire) {
                metrics
                    .local_responses
                    .get_or_create(&ReasonLabels {
                        reason: "header_timeout",
                    })
                    .inc();
            }
        }
        Protocol::H2 => {
            // Boxed, like the HTTP/1 connection: the task's own allocation then stays small.
            let conn = Box::pin(
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(cfg.max_header_bytes as u32)
                    .max_concurrent_streams(256)
                    .serve_connection(TokioIo::new(io), serving.service.make(info)),
            );
            let _ = drive(conn, protocol, cfg, metrics, &track, drain).await;
        }
    }
    metrics.conn_closed(&labels);
}

type H1Io<IO> = HeadGuard<Rewind<IO>>;

/// Serves an HTTP/1 connection. While requests come, hyper owns it; once it has been idle for
/// `--park-after` it is *parked*: hyper is wound down and its read and write buffers (8 KiB
/// each, which hyper keeps for the life of a connection) are freed, and the connection waits
/// for its next request in a small read of its own. The bytes of that read are replayed into a
/// fresh hyper connection. An idle keep-alive connection thus costs about 2 KiB (its task)
/// instead of ~20 KiB; nginx does the same with its header buffers.
async fn serve_http1<IO, M>(
    mut io: H1Io<IO>,
    serving: &Serving<'_, M>,
    info: Arc<ConnInfo>,
    track: &ConnTrack,
    mut drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    M: MakeService,
{
    let cfg = serving.cfg;
    let mut park_after = cfg.park_after;
    loop {
        io.set_park_after(park_after);
        io.new_http_conn();
        let conn = Box::pin(
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true)
                .max_buf_size(cfg.max_header_bytes.max(8192))
                .max_headers(cfg.max_headers)
                .serve_connection(TokioIo::new(io), serving.service.make(info.clone()))
                .with_upgrades(),
        );
        let ended = drive(
            conn,
            Protocol::Http1,
            cfg,
            serving.metrics,
            track,
            drain.clone(),
        )
        .await;
        let (conn, close) = match ended {
            Ended::Closed => return,
            Ended::Parked(c) => (c, false),
            Ended::MustClose(c) => (c, true),
        };
        // hyper is between requests and has flushed its last response.
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return;
        };
        io = parts.io.into_inner();
        let next = if close {
            None
        } else if !parts.read_buf.is_empty() {
            // The start of the next request was already read: no wait.
            Some(parts.read_buf)
        } else {
            drop(parts.read_buf); // hyper's read buffer, freed before the wait
            let parked_at = tokio::time::Instant::now();
            let next = park(&mut io, cfg, serving.metrics, track, &mut drain).await;
            park_after = next_park_after(cfg.park_after, park_after, parked_at.elapsed());
            next
        };
        let Some(next) = next else {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            return;
        };
        io.get_mut().unread(next);
    }
}
