//! The proxy's own HTTP/1.1 server side of a connection: a plain loop that reads a request head
//! (`head`), hands the request to the request path, writes the response head and streams its
//! body (`response`), then waits for the next request or closes. The request body (`body`) and
//! the upgrade hand-off (`upgrade`) reach the connection while the request path runs.
//!
//! Nothing is buffered between reads: bytes are read into a stack array inside a synchronous
//! poll, and only what is left over (a partial head, body bytes, a pipelined request) is copied
//! to the heap, in a buffer sized to it. An idle keep-alive connection is its socket and its
//! task; the parked-connections gauge counts those waiting for their next request.
//!
//! The loop also owns the request-header read timeout (answered 408: from accept for the first
//! head, from its first byte for later ones), the idle timeout, and the drain: idle connections
//! close once the listener closes; responses carry `Connection: close` while draining (see
//! `forward.rs`), after which the connection closes.

mod body;
mod head;
mod response;
mod upgrade;

pub use self::body::{H1Body, H1BodyError};
pub use self::upgrade::{ClientIo, ClientUpgraded, NotUpgraded, OnUpgrade};

use std::convert::Infallible;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use self::body::{Exchange, Reader, Slot, Wire, lock};
use self::head::{Framing, Head, Reject};
use self::response::{Ask, Written};
use super::{ConnInfo, InBody, MakeService, Serving};
use crate::config::Config;
use crate::drain::{Phase, Watcher};
use crate::metrics::{Method, Metrics, ReasonLabels};

/// Bytes read per read call, on the stack.
const READ_CHUNK: usize = 8192;

const RESPONSE_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Serves an HTTP/1 connection until it closes. `prefix`: bytes the listener already read.
pub(super) async fn serve<IO, M>(
    io: IO,
    prefix: Bytes,
    serving: &Serving<'_, M>,
    info: Arc<ConnInfo>,
    mut drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    M: MakeService,
{
    let cfg = serving.cfg;
    let metrics = serving.metrics;
    let service = serving.service.make(info.clone());
    let mut wire = Wire {
        io,
        ahead: BytesMut::new(),
    };
    wire.keep(&prefix);
    drop(prefix);
    let mut timer = None;
    let mut first = true;
    loop {
        let waited = wait_head(
            &mut wire, cfg, metrics, &info, &mut drain, &mut timer, first,
        )
        .await;
        first = false;
        let head = match waited {
            Waited::Head(head) => head,
            Waited::Reject(reject) => {
                metrics.count_request(Method::Other, reject.status().as_u16());
                count_local(metrics, reject.reason());
                let _ = answer_and_close(&mut wire.io, reject.response()).await;
                return;
            }
            Waited::HeadTimeout => {
                count_local(metrics, "header_timeout");
                let _ = answer_and_close(&mut wire.io, RESPONSE_408).await;
                return;
            }
            Waited::Close => {
                let _ = wire.io.shutdown().await;
                return;
            }
            Waited::Failed => return,
        };
        // Boxed per request: inline, the request path's future would sit in every connection's
        // task for its whole life, idle or not.
        match Box::pin(exchange(wire, head, &service, cfg.max_header_bytes)).await {
            Next::Keep(w) if drain.phase() < Phase::Closing => wire = w,
            Next::Keep(mut w) | Next::Close(mut w) => {
                let _ = w.io.shutdown().await;
                return;
            }
            Next::Done => return,
        }
    }
}

fn count_local(metrics: &Metrics, reason: &'static str) {
    metrics
        .local_responses
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

async fn answer_and_close<IO: AsyncWrite + Unpin>(io: &mut IO, response: &[u8]) -> io::Result<()> {
    io.write_all(response).await?;
    io.flush().await?;
    io.shutdown().await
}

/// How waiting for a request head ended.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per request; boxing the head would allocate per request"
)]
enum Waited {
    Head(Head),
    Reject(Reject),
    /// The head did not arrive within `--header-read-timeout`.
    HeadTimeout,
    /// The client closed, the connection idled out, or the drain closes idle connections.
    Close,
    /// The socket failed.
    Failed,
}

/// Counts a connection as idle between requests while it waits (see the module docs).
struct Idle<'a>(Option<&'a Metrics>);

impl Idle<'_> {
    fn end(&mut self) {
        if let Some(m) = self.0.take() {
            m.parked_connections.dec();
        }
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Waits for the next request head: parsed from bytes already in hand, or read.
async fn wait_head<IO: AsyncRead + Unpin>(
    wire: &mut Wire<IO>,
    cfg: &Config,
    metrics: &Metrics,
    info: &ConnInfo,
    drain: &mut Watcher,
    timer: &mut Option<Pin<Box<Sleep>>>,
    first: bool,
) -> Waited {
    let limits = (cfg.max_header_bytes, cfg.max_headers);
    if !wire.ahead.is_empty() {
        match head::parse(&wire.ahead, limits.0, limits.1) {
            Ok(Some((head, len))) => {
                wire.consume(len);
                return Waited::Head(head);
            }
            Ok(None) => {}
            Err(reject) => return Waited::Reject(reject),
        }
    }
    // The first head's deadline runs from accept; a later one's from its first byte.
    let mut head_deadline =
        (first || !wire.ahead.is_empty()).then(|| Instant::now() + cfg.header_read_timeout);
    let mut idle = Idle(None);
    if head_deadline.is_none() {
        metrics.parked_connections.inc();
        metrics.parks.inc();
        idle.0 = Some(metrics);
    }
    let idle_deadline = info.track.idle_deadline(cfg.idle_timeout);
    let read = std::future::poll_fn(|cx| {
        loop {
            match poll_head(wire, limits, cx) {
                Poll::Ready(Ok(Some(head))) => return Poll::Ready(Waited::Head(head)),
                Poll::Ready(Ok(None)) => {
                    if head_deadline.is_none() {
                        head_deadline = Some(Instant::now() + cfg.header_read_timeout);
                        idle.end();
                    }
                }
                Poll::Ready(Err(waited)) => return Poll::Ready(waited),
                Poll::Pending => break,
            }
        }
        let due = head_deadline.unwrap_or(idle_deadline);
        let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if crate::deadline::poll_lazily(sleep.as_mut(), due, cx).is_ready() {
            return Poll::Ready(if head_deadline.is_some() {
                Waited::HeadTimeout
            } else {
                Waited::Close
            });
        }
        Poll::Pending
    });
    tokio::select! {
        // A head that has arrived is served (with `Connection: close` while draining) rather
        // than cut off by a drain phase that became due at the same moment.
        biased;
        waited = read => waited,
        _ = drain.reached(Phase::Closing) => Waited::Close,
    }
}

/// Reads once into a stack buffer and parses: `Some(head)` when a head is complete, `None` when
/// bytes of one were kept for the next read.
fn poll_head<IO: AsyncRead + Unpin>(
    wire: &mut Wire<IO>,
    (max_bytes, max_headers): (usize, usize),
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Head>, Waited>> {
    // Uninitialised: zeroing the array on every read would cost more than parsing a head.
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut chunk);
    if ready!(Pin::new(&mut wire.io).poll_read(cx, &mut buf)).is_err() {
        return Poll::Ready(Err(Waited::Failed));
    }
    let read = buf.filled();
    if read.is_empty() {
        return Poll::Ready(Err(if wire.ahead.is_empty() {
            Waited::Close
        } else {
            Waited::Failed
        }));
    }
    let parsed = if wire.ahead.is_empty() {
        // The common case: the head is whole in this read and never touches the heap buffer.
        match head::parse(read, max_bytes, max_headers) {
            Ok(Some((head, len))) => {
                wire.keep(&read[len..]);
                return Poll::Ready(Ok(Some(head)));
            }
            Ok(None) => {
                wire.keep(read);
                return Poll::Ready(Ok(None));
            }
            Err(reject) => Err(reject),
        }
    } else {
        wire.keep(read);
        head::parse(&wire.ahead, max_bytes, max_headers)
    };
    Poll::Ready(match parsed {
        Ok(Some((head, len))) => {
            wire.consume(len);
            Ok(Some(head))
        }
        Ok(None) => Ok(None),
        Err(reject) => Err(Waited::Reject(reject)),
    })
}

/// What follows an exchange.
enum Next<IO> {
    /// Another request may follow.
    Keep(Wire<IO>),
    /// The connection must be closed.
    Close(Wire<IO>),
    /// The socket is gone (failed, or handed to an upgrade tunnel).
    Done,
}

/// Where the connection's wire is during an exchange: with the connection, or lent to the
/// request body.
enum Place<IO> {
    Own(Wire<IO>),
    Lent(Slot<IO>),
}

impl<IO> Place<IO> {
    /// The wire back after the response, and whether the request body was read to its end.
    fn reclaim(self) -> Option<(Wire<IO>, bool)> {
        match self {
            Self::Own(w) => Some((w, true)),
            Self::Lent(slot) => {
                let mut ex = lock(&slot);
                let done = ex.reader.is_done();
                ex.wire.take().map(|w| (w, done))
            }
        }
    }

    fn poll_io<R>(
        self: Pin<&mut Self>,
        f: impl FnOnce(Pin<&mut IO>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        IO: Unpin,
    {
        match self.get_mut() {
            Self::Own(w) => f(Pin::new(&mut w.io)),
            Self::Lent(slot) => match lock(slot).wire.as_mut() {
                Some(w) => f(Pin::new(&mut w.io)),
                None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Place<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(|io| io.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(|io| io.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(|io| io.poll_shutdown(cx))
    }
}

/// One request and its response.
async fn exchange<IO, S, B>(wire: Wire<IO>, head: Head, service: &S, max_ahead: usize) -> Next<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<InBody>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
{
    let Head {
        request,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    } = head;
    let method = request.method().clone();
    let version = request.version();
    let (mut place, body) = match framing {
        Framing::Empty => (Place::Own(wire), InBody::Empty),
        Framing::Length(n) => lend(wire, Reader::length(n, expect_continue)),
        Framing::Chunked => lend(wire, Reader::chunked(expect_continue)),
    };
    let mut req = request.map(|()| body);
    let upgrade_tx = upgrade.then(|| {
        let (tx, rx) = oneshot::channel();
        req.extensions_mut().insert(OnUpgrade::new(rx));
        tx
    });
    let call = service.call(req);
    let answered = match &mut place {
        // A bodyless request's socket is watched meanwhile: a client that goes away cancels the
        // request (hyper did the same). A body being read watches the socket by itself.
        Place::Own(wire) => {
            tokio::select! {
                biased;
                answered = call => Some(answered),
                () = client_gone(wire, max_ahead) => None,
            }
        }
        Place::Lent(_) => Some(call.await),
    };
    let response = match answered {
        Some(Ok(r)) => r,
        Some(Err(never)) => match never {},
        None => return Next::Done,
    };
    let (parts, body) = response.into_parts();
    let hint = http_body::Body::size_hint(&body).exact();
    let ask = Ask {
        method: &method,
        version,
        keep_alive,
    };
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    let encoded = response::encode(&parts, ask, hint);
    drop(parts);
    let keep = encoded.keep_alive;
    let written = match response::write(&mut place, encoded, body).await {
        Ok(w) => w,
        Err(e) => {
            tracing::debug!(error = %e, "writing the response failed");
            return Next::Done;
        }
    };
    let Some((wire, body_done)) = place.reclaim() else {
        return Next::Done;
    };
    if switching {
        return match upgrade_tx {
            Some(tx) => {
                let Wire { io, ahead } = wire;
                // The tunnel may be gone already (its app side failed); the socket goes with it.
                let io: Box<dyn ClientIo> = Box::new(io);
                let _ = tx.send(ClientUpgraded::new(ahead.freeze(), io));
                Next::Done
            }
            None => Next::Close(wire),
        };
    }
    // A body left unread would be taken for the next head.
    if keep && body_done && written == Written::Complete {
        Next::Keep(wire)
    } else {
        Next::Close(wire)
    }
}

/// Resolves when the client closes the connection (or it fails) while a request is served;
/// bytes it sends meanwhile (a pipelined request) are kept, up to `max_ahead`, after which the
/// socket is left alone until the response is written.
async fn client_gone<IO: AsyncRead + Unpin>(wire: &mut Wire<IO>, max_ahead: usize) {
    std::future::poll_fn(|cx| {
        while wire.ahead.len() < max_ahead {
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            match ready!(Pin::new(&mut wire.io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => wire.keep(buf.filled()),
                _ => return Poll::Ready(()),
            }
        }
        Poll::Pending
    })
    .await;
}

/// Lends the wire to the request body for an exchange with a body.
fn lend<IO>(wire: Wire<IO>, reader: Reader) -> (Place<IO>, InBody)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot: Slot<IO> = Arc::new(Mutex::new(Exchange {
        wire: Some(wire),
        reader,
    }));
    let body = H1Body {
        source: slot.clone(),
    };
    (Place::Lent(slot), InBody::H1(body))
}
