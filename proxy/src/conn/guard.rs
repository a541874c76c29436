//! The HTTP/1 request-header read timeout that answers slow clients with 408, and the park
//! timer that reports an idle connection due for parking (see `conn::park`).
//!
//! hyper's own `header_read_timeout` closes the connection silently, while the spec wants a 408;
//! so the guard lives here, at the byte level: while no request is active on an HTTP/1 connection
//! the client has `header_read_timeout` from the first byte of the next request head (or from
//! accept) to get that head parsed. On expiry the guard writes a complete 408 response itself
//! (hyper is not writing at that moment: no request is active) and then reports EOF.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::track::ConnTrack;

/// Whether `bytes` hold the blank line that ends a request head. Heads ended by bare `\n\n`
/// (which hyper also accepts) are not recognised: they just keep their deadline.
fn contains_head_end(bytes: &[u8]) -> bool {
    const END: &[u8] = b"\r\n\r\n";
    // Empty lines before a request line are allowed (RFC 9112 §2.2) and must not pass for the
    // end of a head that has not started yet.
    let start = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n'));
    let bytes = start.map_or(&[][..], |i| &bytes[i..]);
    // A bodyless request's chunk ends with it; only other chunks need the search.
    bytes.ends_with(END) || memchr::memmem::find(bytes, END).is_some()
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
        // The current head's deadline; `None` when the head arrived whole in the read that
        // started it (the common case: then neither the clock nor the timer is touched). `sleep`
        // follows it lazily (`deadline::poll_lazily`) and only while it is polled.
        head_deadline: Option<Instant>,
        // Generation of the last request seen; a change means a head completed.
        seen_generation: u64,
        // Whether a head is in progress (its first bytes arrived, it is not parsed yet).
        armed: bool,
        state: GuardState,
        // Set when the guard answered 408, for metrics/logging by the owner.
        timed_out: Arc<AtomicBool>,
        park: ParkTimer,
    }
}

/// When an idle HTTP/1 connection is due for parking (see `conn::park`).
#[derive(Debug)]
struct ParkTimer {
    // Idle time after a reusable exchange before the connection is due.
    after: Option<Duration>,
    // Allocated on the first idle wait; moved lazily (`deadline::poll_lazily`).
    sleep: Option<Pin<Box<Sleep>>>,
    // When the current idle period makes the connection due.
    due: Instant,
    // Request generation the timer is armed for.
    armed_for: Option<u64>,
    // The timer fired for `armed_for` and was reported: once per idle period, because the
    // server may decline (draining) and must not be woken again and again for it.
    fired: bool,
    // Request generation when the current hyper connection started: only an exchange completed
    // on it makes it parkable (a fresh one may hold bytes of a head).
    conn_generation: u64,
}

impl ParkTimer {
    /// Called whenever hyper waits on the connection (a read or flush with nothing to do): arms
    /// the timer once the exchange on this hyper connection has ended reusable, and flags the
    /// connection due when it fires. `head_started`: bytes of a new head have arrived.
    fn check(&mut self, track: &ConnTrack, head_started: bool, cx: &mut Context<'_>) {
        let Some(after) = self.after else { return };
        let generation = track.generation();
        if head_started
            || track.active() != 0
            || generation == self.conn_generation
            || !track.reusable()
        {
            return;
        }
        if self.armed_for != Some(generation) {
            self.armed_for = Some(generation);
            self.fired = false;
            // From when the exchange ended (recorded then), saving a clock read per request.
            self.due = track.idle_since().unwrap_or_else(Instant::now) + after;
        }
        if self.fired {
            return;
        }
        let due = self.due;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        // A busy connection gets a new due time per request: the timer is moved lazily.
        if crate::deadline::poll_lazily(sleep.as_mut(), due, cx).is_ready() {
            self.fired = true;
            track.park_due.store(true, Ordering::Release);
        }
    }
}

impl<T> HeadGuard<T> {
    /// Guard `inner`; the deadline starts now (a fresh connection must send a head in time).
    pub fn new(
        inner: T,
        track: Arc<ConnTrack>,
        timeout: Duration,
        timed_out: Arc<AtomicBool>,
    ) -> Self {
        let generation = track.generation();
        let epoch = track.epoch;
        let head_deadline = Instant::now() + timeout;
        Self {
            inner,
            track,
            timeout,
            sleep: Box::pin(tokio::time::sleep_until(head_deadline)),
            head_deadline: Some(head_deadline),
            seen_generation: generation,
            armed: true,
            state: GuardState::Watching,
            timed_out,
            park: ParkTimer {
                after: None,
                sleep: None,
                due: epoch,
                armed_for: None,
                fired: false,
                conn_generation: generation,
            },
        }
    }

    /// Report the connection due for parking once it has been idle this long after a reusable
    /// exchange (`None`: never, the default); applies from the next idle period. The server sets
    /// it per hyper connection, since the delay backs off per connection.
    pub fn set_park_after(&mut self, after: Option<Duration>) {
        self.park.after = after;
    }

    /// A new hyper connection takes over this I/O.
    pub fn new_http_conn(&mut self) {
        self.park.conn_generation = self.track.generation();
        self.park.armed_for = None;
        // The previous connection may have flagged itself again while winding down.
        self.track.park_due.store(false, Ordering::Release);
    }

    /// The wrapped I/O.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
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
                    if idle
                        && *this.armed
                        && let Some(deadline) = *this.head_deadline
                    {
                        let sleep = this.sleep.as_mut();
                        if crate::deadline::poll_lazily(sleep, deadline, cx).is_ready() {
                            this.timed_out.store(true, Ordering::Release);
                            *this.state = GuardState::Writing408(0);
                            continue;
                        }
                    }
                    let before = buf.filled().len();
                    let Poll::Ready(res) = this.inner.as_mut().poll_read(cx, buf) else {
                        let head_started = *this.armed && generation == *this.seen_generation;
                        this.park.check(this.track, head_started, cx);
                        return Poll::Pending;
                    };
                    if res.is_ok()
                        && buf.filled().len() > before
                        && idle
                        && !*this.armed
                        && this.track.active() == 0
                    {
                        // First bytes of a new head on an idle keep-alive connection.
                        *this.armed = true;
                        // hyper reads again before the head it got is dispatched, so a deadline
                        // for a head that is already whole would cost a timer per request.
                        let whole = contains_head_end(&buf.filled()[before..]);
                        *this.head_deadline = (!whole).then(|| Instant::now() + *this.timeout);
                    }
                    return Poll::Ready(res);
                }
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for HeadGuard<T> {
    super::delegate_writes!();
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let res = ready!(this.inner.poll_flush(cx));
        // hyper flushes on every turn of its loop, including the one that ends a response,
        // after which it may not read again until bytes arrive: the park timer is armed here.
        if matches!(*this.state, GuardState::Watching) && !this.track.is_upgraded() {
            let head_started = *this.armed && this.track.generation() == *this.seen_generation;
            this.park.check(this.track, head_started, cx);
        }
        Poll::Ready(res)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        // hyper has flushed everything by now (it flushes before shutting down).
        if this.track.take_shutdown() {
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_head_end;

    #[test]
    fn a_head_is_whole_only_with_its_blank_line() {
        assert!(contains_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(contains_head_end(
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        ));
        assert!(!contains_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!contains_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!contains_head_end(b""));
        assert!(!contains_head_end(b"\r\n\r\nGET / HT"));
        assert!(contains_head_end(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
}
