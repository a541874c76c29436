//! Connections to the app: a small pool of HTTP/1.1 connections driven by hyper's
//! `client::conn::http1`, checked out per request and returned when the response body ends.
//!
//! The sidecar talks to exactly one address over plaintext HTTP/1.1, so the pool is one LIFO
//! list (the most recently used connection is the warmest) instead of hyper-util's legacy
//! `Client`, whose per-request pool-key hashing, checkout/connect race and extra hand-off task
//! measured ~1.5 µs of the proxy's ~6 µs of user CPU per request (docs/benchmarks.md).
//!
//! What the legacy client did that is kept here: a request that a pooled connection never wrote
//! (the app closed it while idle) is sent again on another connection, whatever its method;
//! connect failures and timeouts are told apart from failures after sending (only the latter
//! make a retry depend on idempotency); idle connections expire within the idle timeout.
//!
//! The pool serves one address; the sidecar has one (its app), the gateway one per endpoint.
//!
//! The pool is generic over the request body type so that it knows nothing of the proxy's
//! bodies (`body.rs` holds a [`Lease`] in each response body).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::coalesce::Coalesce;

/// Why a request to the app failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection to the app failed.
    #[error("connecting to the app failed")]
    Connect(#[source] std::io::Error),
    /// The TCP connection to the app did not complete within the connect timeout.
    #[error("connecting to the app timed out")]
    ConnectTimeout,
    /// A new connection closed before it took the request (nothing was sent).
    #[error("the app closed a new connection before the request was sent")]
    Closed(#[source] hyper::Error),
    /// The exchange failed after the request was (possibly partly) sent.
    #[error("app request failed")]
    Request(#[source] hyper::Error),
    /// The gateway had no endpoint to send to (none ready, or every one tried).
    #[error("no endpoint available")]
    NoEndpoint,
    /// The gateway's per-attempt timeout (an HTTPRoute's `backendRequest`) expired.
    #[error("the backend did not answer within the attempt timeout")]
    AttemptTimeout,
}

impl UpstreamError {
    /// Nothing reached the app: a retry cannot duplicate work.
    pub fn is_connect(&self) -> bool {
        !matches!(self, Self::Request(_) | Self::AttemptTimeout)
    }

    /// The connect timeout (or the gateway's attempt timeout) fired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::ConnectTimeout | Self::AttemptTimeout)
    }

    /// No endpoint could be chosen (the gateway answers 503).
    pub fn is_no_endpoint(&self) -> bool {
        matches!(self, Self::NoEndpoint)
    }
}

struct Idle<B> {
    sender: SendRequest<B>,
    /// A sweep has seen it idle; the next sweep closes it. Sweeps run every half idle timeout,
    /// so a connection is closed after between one half and one whole idle timeout, without a
    /// clock read per request.
    swept: bool,
}

/// The app's address and its idle connections.
pub struct Upstream<B> {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Back = most recently returned.
    idle: Mutex<VecDeque<Idle<B>>>,
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("idle", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// A checked-out connection. Dropping it returns the connection to the pool (unless closed);
/// [`Lease::discard`] closes it instead.
pub struct Lease<B> {
    sender: Option<SendRequest<B>>,
    pool: Arc<Upstream<B>>,
}

impl<B> std::fmt::Debug for Lease<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl<B> Lease<B> {
    /// Close the connection instead of pooling it (its state is unknown or it was upgraded).
    pub fn discard(mut self) {
        self.sender = None;
    }
}

impl<B> Drop for Lease<B> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.put(sender);
        }
    }
}

impl<B> Upstream<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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

    /// Send `req` (origin-form URI) on a pooled or new connection. The [`Lease`] must live until
    /// the response body has been read.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    pub fn send(
        self: &Arc<Self>,
        mut req: Request<B>,
    ) -> impl Future<Output = Result<(Response<Incoming>, Lease<B>), UpstreamError>> {
        // Not an `async fn`: its future would keep the request twice (see `forward::handle`).
        async move {
            loop {
                let (mut sender, fresh) = match self.take_idle() {
                    Some(s) => (s, false),
                    // Boxed: connecting is rare, and its state would otherwise bloat (and be
                    // copied with) every request's future.
                    None => (Box::pin(self.connect()).await?, true),
                };
                if let Err(e) = sender.ready().await {
                    if fresh {
                        return Err(UpstreamError::Closed(e));
                    }
                    continue;
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        return Ok((
                            resp,
                            Lease {
                                sender: Some(sender),
                                pool: self.clone(),
                            },
                        ));
                    }
                    Err(mut e) => match e.take_message() {
                        // Never written to the socket: safe to send on another connection.
                        Some(unsent) if !fresh => req = unsent,
                        Some(_) => return Err(UpstreamError::Closed(e.into_error())),
                        None => return Err(UpstreamError::Request(e.into_error())),
                    },
                }
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<B>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        // Requests and responses are small writes that must not wait for delayed ACKs.
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(Coalesce::new(stream)))
            .await
            .map_err(UpstreamError::Closed)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "app connection closed with error");
            }
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<B>> {
        let mut idle = self.lock();
        while let Some(entry) = idle.pop_back() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Idle connections (for tests and debugging).
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }
}

impl<B> Upstream<B> {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle<B>>> {
        // The list stays consistent even if a holder panicked (push/pop only).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, sender: SendRequest<B>) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender,
            swept: false,
        });
    }

    /// Close connections idle since the previous sweep or closed by the app.
    fn expire(&self) {
        let mut idle = self.lock();
        idle.retain_mut(|e| {
            let keep = !e.swept && !e.sender.is_closed();
            e.swept = true;
            keep
        });
    }
}

async fn sweep<B>(pool: Weak<Upstream<B>>) {
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
