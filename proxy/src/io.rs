//! Connection I/O helpers: replaying sniffed bytes, per-connection activity tracking, and the
//! HTTP/1 request-header read timeout that answers slow clients with 408.
//!
//! hyper's own `header_read_timeout` closes the connection silently, while the spec wants a 408;
//! so the guard lives here, at the byte level: while no request is active on an HTTP/1 connection
//! the client has `header_read_timeout` from the first byte of the next request head (or from
//! accept) to get that head parsed. On expiry the guard writes a complete 408 response itself
//! (hyper is not writing at that moment: no request is active) and then reports EOF.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Per-connection activity shared by the I/O guard, the connection task and the service.
#[derive(Debug)]
pub struct ConnTrack {
    epoch: Instant,
    active: AtomicU32,
    /// Milliseconds since `epoch` when the connection last became idle (or 0 = accept).
    idle_since_ms: AtomicU64,
    /// Incremented whenever a request starts, so the guard can tell a new head from an old one.
    generation: AtomicU64,
    /// The connection switched protocols (101): its bytes are no longer HTTP/1 heads.
    upgraded: std::sync::atomic::AtomicBool,
}

impl ConnTrack {
    /// A fresh tracker, idle from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            upgraded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The connection was upgraded; the head timeout no longer applies.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// A request started on this connection.
    pub fn begin(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A request (response body) finished.
    pub fn end(&self) {
        self.idle_since_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Release);
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// Requests in progress.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// When the connection became idle, if it is idle now.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.active() > 0 {
            return None;
        }
        let ms = self.idle_since_ms.load(Ordering::Acquire);
        Some(self.epoch + Duration::from_millis(ms))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

pin_project_lite::pin_project! {
    /// Replays `prefix` before reading from `inner` (bytes consumed by protocol sniffing).
    #[derive(Debug)]
    pub struct Rewind<T> {
        prefix: Option<Bytes>,
        #[pin]
        inner: T,
    }
}

impl<T> Rewind<T> {
    /// Wrap `inner`, replaying `prefix` first.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self {
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner,
        }
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.as_mut() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if prefix.is_empty() {
                *this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
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
}

const RESPONSE_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

#[derive(Debug)]
enum GuardState {
    Watching,
    Writing408(usize),
    Eof,
}

pin_project_lite::pin_project! {
    /// HTTP/1 request-header read timeout (see the module docs).
    #[derive(Debug)]
    pub struct HeadGuard<T> {
        #[pin]
        inner: T,
        track: Arc<ConnTrack>,
        timeout: Duration,
        // Boxed so the guard stays `Unpin`-friendly and small when idle.
        sleep: Pin<Box<Sleep>>,
        // Generation of the last request seen; a change means a head completed.
        seen_generation: u64,
        // Whether the deadline is armed for the current head.
        armed: bool,
        state: GuardState,
        // Set when the guard answered 408, for metrics/logging by the owner.
        timed_out: Arc<std::sync::atomic::AtomicBool>,
    }
}

impl<T> HeadGuard<T> {
    /// Guard `inner`; the deadline starts now (a fresh connection must send a head in time).
    pub fn new(
        inner: T,
        track: Arc<ConnTrack>,
        timeout: Duration,
        timed_out: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let generation = track.generation();
        Self {
            inner,
            track,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            seen_generation: generation,
            armed: true,
            state: GuardState::Watching,
            timed_out,
        }
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for HeadGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.state {
                GuardState::Eof => return Poll::Ready(Ok(())),
                GuardState::Writing408(written) => {
                    while *written < RESPONSE_408.len() {
                        match ready!(
                            this.inner
                                .as_mut()
                                .poll_write(cx, &RESPONSE_408[*written..])
                        ) {
                            Ok(0) | Err(_) => {
                                *this.state = GuardState::Eof;
                                return Poll::Ready(Ok(()));
                            }
                            Ok(n) => *written += n,
                        }
                    }
                    let _ = ready!(this.inner.as_mut().poll_flush(cx));
                    *this.state = GuardState::Eof;
                    return Poll::Ready(Ok(()));
                }
                GuardState::Watching => {
                    if this.track.is_upgraded() {
                        return this.inner.as_mut().poll_read(cx, buf);
                    }
                    let generation = this.track.generation();
                    if generation != *this.seen_generation {
                        // A head was parsed since we last looked: that head met its deadline.
                        *this.seen_generation = generation;
                        *this.armed = false;
                    }
                    let idle = this.track.active() == 0;
                    if idle && *this.armed && this.sleep.as_mut().poll(cx).is_ready() {
                        this.timed_out.store(true, Ordering::Release);
                        *this.state = GuardState::Writing408(0);
                        continue;
                    }
                    let before = buf.filled().len();
                    let res = ready!(this.inner.as_mut().poll_read(cx, buf));
                    if res.is_ok()
                        && buf.filled().len() > before
                        && idle
                        && !*this.armed
                        && this.track.active() == 0
                    {
                        // First bytes of a new head on an idle keep-alive connection.
                        *this.armed = true;
                        let deadline = Instant::now() + *this.timeout;
                        this.sleep.as_mut().reset(deadline);
                    }
                    return Poll::Ready(res);
                }
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for HeadGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
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
}
