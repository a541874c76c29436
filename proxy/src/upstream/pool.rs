//! The pool of idle app connections and the checkout that feeds each request's exchange.
//!
//! The sidecar talks to exactly one address over plaintext HTTP/1.1, so the pool is one LIFO
//! list (the most recently used connection is the warmest) instead of hyper-util's legacy
//! `Client`, whose per-request pool-key hashing, checkout/connect race and extra hand-off task
//! measured ~1.5 µs of the proxy's ~6 µs of user CPU per request (docs/benchmarks.md). An idle
//! entry is only its socket: no task, no channel, no buffer.
//!
//! The pool serves one address; the sidecar has one (its app), the gateway one per endpoint.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::body::AppBody;
use super::exchange::{self, Outgoing};
use super::{RequestHead, UpstreamError};
use crate::body::ReqBody;

struct Idle {
    stream: TcpStream,
    /// A sweep has seen it idle; the next sweep closes it. Sweeps run every half idle timeout,
    /// so a connection is closed after between one half and one whole idle timeout, without a
    /// clock read per request.
    swept: bool,
}

/// The app's address and its idle connections.
pub struct Upstream {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Back = most recently returned.
    idle: Mutex<VecDeque<Idle>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("idle", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// A checked-out connection. Dropping it returns the connection to the pool;
/// [`Lease::discard`] closes it instead.
pub struct Lease {
    stream: Option<TcpStream>,
    pool: Arc<Upstream>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// Close the connection instead of pooling it (its state is unknown or it was upgraded).
    pub fn discard(mut self) {
        self.stream = None;
    }

    /// The socket, while leased.
    pub(crate) fn stream(&mut self) -> Option<&mut TcpStream> {
        self.stream.as_mut()
    }

    /// The socket, taken out of the pool's hands for good (an upgrade).
    pub(crate) fn into_stream(mut self) -> Option<TcpStream> {
        self.stream.take()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.pool.put(stream);
        }
    }
}

impl Upstream {
    /// A pool for `addr`; must be called inside the runtime (it starts the idle sweeper).
    pub fn new(
        addr: SocketAddr,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            addr,
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(VecDeque::new()),
        });
        tokio::spawn(sweep(Arc::downgrade(&pool)));
        pool
    }

    /// Send `req` (origin-form URI) on a pooled or new connection: [`Upstream::send_head`] for a
    /// whole request.
    pub fn send(
        self: &Arc<Self>,
        req: Request<ReqBody>,
    ) -> impl Future<Output = Result<Response<AppBody>, UpstreamError>> + Send {
        let (parts, body) = req.into_parts();
        self.send_head(RequestHead::from(&parts), body)
    }

    /// Send `head` (origin-form target) and `body` on a pooled or new connection. The head is
    /// encoded before this returns, so the caller keeps its parts for another attempt. The
    /// response body holds the connection until it has been read (or returns it at once when
    /// it was read with the head).
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    pub fn send_head<'s>(
        self: &'s Arc<Self>,
        head: RequestHead<'_>,
        body: ReqBody,
    ) -> impl Future<Output = Result<Response<AppBody>, UpstreamError>> + Send + use<'s> {
        let mut out = Outgoing::new(head, body);
        // Not an `async fn`: its future would keep the request twice (see `forward::handle`).
        async move {
            loop {
                let (stream, fresh) = match self.take_idle() {
                    Some(s) => (s, false),
                    // Boxed: connecting is rare, and its state would otherwise bloat (and be
                    // copied with) every request's future.
                    None => (Box::pin(self.connect()).await?, true),
                };
                let lease = Lease {
                    stream: Some(stream),
                    pool: self.clone(),
                };
                match exchange::run(lease, &mut out).await {
                    Ok(resp) => return Ok(resp),
                    // Never written to the socket: safe to send on another connection.
                    Err(failed) if !failed.written && !fresh => {
                        tracing::debug!(error = %failed.error, "pooled app connection failed before the request was written");
                    }
                    Err(failed) if !failed.written => {
                        return Err(UpstreamError::Closed(failed.error));
                    }
                    Err(failed) => return Err(UpstreamError::Request(failed.error)),
                }
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        // Requests and responses are small writes that must not wait for delayed ACKs.
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        Ok(stream)
    }

    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.lock();
        while let Some(mut entry) = idle.pop_back() {
            if still_open(&mut entry.stream) {
                return Some(entry.stream);
            }
        }
        None
    }

    /// Idle connections (for tests and debugging).
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // The list stays consistent even if a holder panicked (push/pop only).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, stream: TcpStream) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            stream,
            swept: false,
        });
    }

    /// Close connections idle since the previous sweep or closed by the app.
    fn expire(&self) {
        let mut idle = self.lock();
        idle.retain_mut(|e| {
            let keep = !e.swept && still_open(&mut e.stream);
            e.swept = true;
            keep
        });
    }
}

/// Whether an idle connection can take a request: the app has neither closed it nor sent
/// anything unasked (which would be read as the next response). Without a syscall in the common
/// case: only a socket that the reactor saw become readable is read, and a read that finds
/// nothing clears that readiness.
fn still_open(stream: &mut TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [MaybeUninit::<u8>::uninit(); 1];
            let mut buf = ReadBuf::uninit(&mut probe);
            // EOF or stray bytes: not usable; nothing there (a stale readiness): usable.
            matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
        }
    }
}

async fn sweep(pool: Weak<Upstream>) {
    let every = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_millis(10)),
        None => return,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.expire(),
            None => return,
        }
    }
}
