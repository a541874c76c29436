//! The whole-request deadline: a future that gives up at an optional instant.
//!
//! `tokio::time::timeout_at` would do, but the request path needs "maybe a deadline", and
//! awaiting either a `Timeout<F>` or a bare `F` makes the compiler reserve room for both (and
//! for the `F` that was moved into the `Timeout`) in every request's future. One enum keeps a
//! single copy of the wrapped future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

pin_project_lite::pin_project! {
    /// Resolves to `Some(output)`, or `None` once the deadline (if any) has passed first.
    #[project = Projected]
    pub enum Deadline<F> {
        /// Bounded by a timer.
        Timed { #[pin] fut: F, #[pin] sleep: Sleep },
        /// No deadline configured: no timer is registered.
        Unbounded { #[pin] fut: F },
    }
}

impl<F: Future> Deadline<F> {
    /// Run `fut` until `deadline`, or without one.
    pub fn new(fut: F, deadline: Option<Instant>) -> Self {
        match deadline {
            Some(d) => Self::Timed {
                fut,
                sleep: tokio::time::sleep_until(d),
            },
            None => Self::Unbounded { fut },
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            // The work is polled first: a result that is ready counts even at the deadline.
            Projected::Timed { fut, sleep } => match fut.poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending => sleep.poll(cx).map(|()| None),
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
        assert_eq!(Deadline::new(slow, Some(deadline)).await, None);
        assert!(Instant::now() >= deadline);

        let quick = async { 7 };
        assert_eq!(Deadline::new(quick, Some(start)).await, Some(7));
        let unbounded = tokio::time::sleep(Duration::from_millis(60));
        assert_eq!(Deadline::new(unbounded, None).await, Some(()));
    }
}
