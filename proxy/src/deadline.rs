//! The whole-request deadline: a future that gives up at an optional instant, and the timers
//! behind it.
//!
//! `tokio::time::timeout_at` would do, but the request path needs "maybe a deadline", and
//! awaiting either a `Timeout<F>` or a bare `F` makes the compiler reserve room for both (and
//! for the `F` that was moved into the `Timeout`) in every request's future. One enum keeps a
//! single copy of the wrapped future.
//!
//! A fresh tokio timer per request costs two trips through the runtime's timer wheel (insert on
//! the first poll, removal when the response comes first, the usual case). The requests of one
//! HTTP/1 connection run one at a time and their deadlines only move later, so they share one
//! [`ConnTimer`] that is moved lazily (see [`poll_lazily`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

/// Polls `sleep` as a timer for `deadline` that is moved only when that is unavoidable: to an
/// earlier deadline at once, to a later one only after it fired early. A timer re-armed for
/// every later deadline (every request or exchange of a busy connection) would be re-registered
/// each time; this one is at most once per timer period. `Ready` once `deadline` has passed.
pub fn poll_lazily(
    mut sleep: Pin<&mut Sleep>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
    }
    loop {
        ready!(sleep.as_mut().poll(cx));
        if sleep.deadline() >= deadline {
            return Poll::Ready(());
        }
        sleep.as_mut().reset(deadline);
    }
}

/// The request timer of one HTTP/1 connection, shared by its requests. Only one request may
/// wait on it at a time (the timer keeps one waker): HTTP/1 runs them one after another, HTTP/2
/// streams each get their own timer instead.
#[derive(Debug, Default)]
pub struct ConnTimer {
    // Allocated by the connection's first request; the lock is never contended.
    sleep: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl ConnTimer {
    fn poll_until(&self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        poll_lazily(sleep.as_mut(), deadline, cx)
    }
}

pin_project_lite::pin_project! {
    /// Resolves to `Some(output)`, or `None` once the deadline (if any) has passed first.
    #[project = Projected]
    pub enum Deadline<'t, F> {
        /// Bounded by a timer of its own.
        Timed { #[pin] fut: F, #[pin] sleep: Sleep },
        /// Bounded by its connection's timer.
        Shared { #[pin] fut: F, timer: &'t ConnTimer, deadline: Instant },
        /// No deadline configured: no timer is registered.
        Unbounded { #[pin] fut: F },
    }
}

impl<'t, F: Future> Deadline<'t, F> {
    /// Run `fut` until `deadline` (on `shared`, the connection's timer, when given), or without
    /// one.
    pub fn new(fut: F, deadline: Option<Instant>, shared: Option<&'t ConnTimer>) -> Self {
        match (deadline, shared) {
            (Some(deadline), Some(timer)) => Self::Shared {
                fut,
                timer,
                deadline,
            },
            (Some(d), None) => Self::Timed {
                fut,
                sleep: tokio::time::sleep_until(d),
            },
            (None, _) => Self::Unbounded { fut },
        }
    }
}

impl<F: Future> Future for Deadline<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The work is polled first: a result that is ready counts even at the deadline.
        match self.project() {
            Projected::Timed { fut, sleep } => match fut.poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending => sleep.poll(cx).map(|()| None),
            },
            Projected::Shared {
                fut,
                timer,
                deadline,
            } => match fut.poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending => timer.poll_until(*deadline, cx).map(|()| None),
            },
            Projected::Unbounded { fut } => fut.poll(cx).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Real time with short durations (tokio's paused clock needs its `test-util` feature, which
    // would leak into the release binaries the benchmarks build together with the examples).
    #[tokio::test]
    async fn gives_up_at_the_deadline_and_not_before() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(50);
        let slow = tokio::time::sleep(Duration::from_secs(30));
        assert_eq!(Deadline::new(slow, Some(deadline), None).await, None);
        assert!(Instant::now() >= deadline);

        let quick = async { 7 };
        assert_eq!(Deadline::new(quick, Some(start), None).await, Some(7));
        let unbounded = tokio::time::sleep(Duration::from_millis(60));
        assert_eq!(Deadline::new(unbounded, None, None).await, Some(()));
    }

    #[tokio::test]
    async fn a_shared_timer_keeps_each_request_to_its_own_deadline() {
        let timer = ConnTimer::default();
        // A first request arms the timer for its deadline and finishes long before it.
        let first = Instant::now() + Duration::from_millis(40);
        assert_eq!(
            Deadline::new(async { 1 }, Some(first), Some(&timer)).await,
            Some(1)
        );
        let pending = Deadline::new(std::future::pending::<()>(), Some(first), Some(&timer));
        assert_eq!(pending.await, None);
        assert!(Instant::now() >= first);

        // The next one outlives the first's deadline (the timer fires early once) and still gets
        // all of its own time.
        let start = Instant::now();
        let own = start + Duration::from_millis(120);
        let slow = tokio::time::sleep(Duration::from_secs(30));
        assert_eq!(Deadline::new(slow, Some(own), Some(&timer)).await, None);
        assert!(Instant::now() >= own);

        // An earlier deadline than the armed one moves the timer back at once.
        let late = Instant::now() + Duration::from_secs(30);
        let early = Instant::now() + Duration::from_millis(30);
        let armed = Deadline::new(std::future::pending::<()>(), Some(late), Some(&timer));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), armed)
                .await
                .is_err()
        );
        let t0 = Instant::now();
        let pending = Deadline::new(std::future::pending::<()>(), Some(early), Some(&timer));
        assert_eq!(pending.await, None);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
