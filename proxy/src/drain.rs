//! Drain coordination in ztunnel's style: one trigger, many watchers, phases that only move
//! forward. The phase is stored here once; everything that asks "are we draining?" (the request
//! path, `/ready`, the drain gauges) reads it through a [`Watcher`] or a [`State`].
//!
//! Every connection task (and every upgraded tunnel) holds a [`Watcher`]. The trigger moves the
//! phase forward: [`Phase::Draining`] (SIGTERM received: keep serving, but close HTTP/1
//! connections after each response and send HTTP/2 a graceful GOAWAY), then [`Phase::Closing`]
//! (listener closed, every connection shut down gracefully, in-flight requests finish), then
//! [`Phase::Forced`] once the drain timeout expires (remaining connections are dropped). The
//! trigger knows everything finished when all watchers are gone (`watch::Sender::closed`); a
//! [`State`] reads the phase without holding the drain up, for holders that live as long as the
//! process (the shared state, the admin server, the metrics).
//!
//! The phase is an atomic beside the channel rather than the channel's value: the request path
//! reads it on every response, and reading a `watch` value takes a lock every worker shares. The
//! channel only carries the wake-up (and counts the watchers).
//!
//! The drain starts on SIGTERM or on a [`Request`] (the admin port's `GET /drain`, which the app
//! container's preStop hook calls: a native sidecar gets SIGTERM only after the app exited, far
//! too late to leave the endpoints before the app stops). A [`State`] can also wait for a phase
//! ([`State::reached`]) without counting as a watcher, so `/drain` can answer once the drain
//! delay is over without holding the drain up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Lifecycle phase, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Normal operation.
    Running,
    /// SIGTERM received; still accepting (drain delay).
    Draining,
    /// Listener closed; connections shut down gracefully.
    Closing,
    /// Drain timeout expired; connections are dropped.
    Forced,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Running,
            1 => Self::Draining,
            2 => Self::Closing,
            _ => Self::Forced,
        }
    }
}

/// Reads the phase without keeping the drain waiting. The default one belongs to no trigger
/// and stays [`Phase::Running`].
#[derive(Debug, Clone, Default)]
pub struct State {
    phase: Arc<AtomicU8>,
    /// Woken on every phase change, for [`State::reached`]. Not a `watch` receiver: those count
    /// as watchers and would keep the drain waiting.
    changed: Arc<Notify>,
}

impl State {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Whether SIGTERM was received (any phase after [`Phase::Running`]).
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Wait until the phase is at least `phase` (returns at once if it already is). Never
    /// returns for a state no trigger moves.
    pub async fn reached(&self, phase: Phase) -> Phase {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the phase is read, so a change between the read and the await
            // still wakes us (notify_waiters only wakes registered waiters).
            notified.as_mut().enable();
            let now = self.phase();
            if now >= phase {
                return now;
            }
            notified.await;
        }
    }
}

/// Asks the drain to start (the admin's `GET /drain`); cheap to clone, idempotent.
#[derive(Debug, Clone)]
pub struct Request {
    tx: Arc<watch::Sender<bool>>,
}

/// Resolves when a [`Request`] asked for the drain (held by [`crate::run`]).
#[derive(Debug)]
pub struct Requested {
    rx: watch::Receiver<bool>,
}

/// A drain request handle and the receiving end.
pub fn request_channel() -> (Request, Requested) {
    let (tx, rx) = watch::channel(false);
    (Request { tx: Arc::new(tx) }, Requested { rx })
}

impl Request {
    /// Ask for the drain; returns whether this call was the first to ask.
    pub fn request(&self) -> bool {
        !self.tx.send_replace(true)
    }
}

impl Requested {
    /// Wait for the first request. Never returns once every [`Request`] is gone unasked.
    pub async fn wait(&mut self) {
        if self.rx.wait_for(|asked| *asked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Moves the phase forward and waits for watchers.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<()>,
    state: State,
}

/// Observes the phase; its existence keeps the drain waiting.
#[derive(Debug, Clone)]
pub struct Watcher {
    rx: watch::Receiver<()>,
    state: State,
}

/// A new trigger and its first watcher.
pub fn channel() -> (Trigger, Watcher) {
    let (tx, rx) = watch::channel(());
    let state = State::default();
    (
        Trigger {
            tx,
            state: state.clone(),
        },
        Watcher { rx, state },
    )
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every connection finished within the timeout.
    Graceful,
    /// The timeout expired and remaining connections were dropped.
    Forced,
}

impl Trigger {
    /// Moves the phase to `phase` unless it is already there or later, and wakes the watchers.
    fn advance(&self, phase: Phase) {
        // Stored before the wake-up is sent, so a watcher woken by it reads the new phase.
        let before = self.state.phase.fetch_max(phase as u8, Ordering::AcqRel);
        if before < phase as u8 {
            self.tx.send_replace(());
            self.state.changed.notify_waiters();
        }
    }

    /// Enter [`Phase::Draining`].
    pub fn start_draining(&self) {
        self.advance(Phase::Draining);
    }

    /// Enter [`Phase::Closing`] and wait up to `timeout` for every watcher to go away; then enter
    /// [`Phase::Forced`] and give tasks a moment to drop their connections.
    pub async fn shutdown(self, timeout: Duration) -> Outcome {
        self.advance(Phase::Closing);
        if tokio::time::timeout(timeout, self.tx.closed())
            .await
            .is_ok()
        {
            return Outcome::Graceful;
        }
        tracing::warn!(
            pending = self.tx.receiver_count(),
            "drain timeout expired with pending connections; closing them"
        );
        self.advance(Phase::Forced);
        // Forced tasks return at their next poll; this bound only guards against a stuck task.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.tx.closed()).await;
        Outcome::Forced
    }

    /// A new watcher (e.g. for the accept loop).
    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
            state: self.state.clone(),
        }
    }

    /// A reader of the phase that does not keep the drain waiting.
    pub fn state(&self) -> State {
        self.state.clone()
    }
}

impl Watcher {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// Whether SIGTERM was received.
    pub fn is_draining(&self) -> bool {
        self.state.is_draining()
    }

    /// Wait until the phase is at least `phase` (returns at once if it already is).
    pub async fn reached(&mut self, phase: Phase) -> Phase {
        self.wait_for(|p| p >= phase).await
    }

    /// Wait for the next phase change after `current`.
    pub async fn next_after(&mut self, current: Phase) -> Phase {
        self.wait_for(|p| p > current).await
    }

    async fn wait_for(&mut self, done: impl Fn(Phase) -> bool) -> Phase {
        loop {
            // Marked seen before the phase is read: a change after the read still wakes us.
            self.rx.mark_unchanged();
            let now = self.phase();
            if done(now) {
                return now;
            }
            if self.rx.changed().await.is_err() {
                // The trigger is gone: treat as forced so tasks end.
                return Phase::Forced;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn graceful_when_watchers_finish() {
        let (trigger, watcher) = channel();
        let mut w = watcher.clone();
        drop(watcher);
        let task = tokio::spawn(async move {
            assert_eq!(w.reached(Phase::Closing).await, Phase::Closing);
        });
        trigger.start_draining();
        assert_eq!(
            trigger.shutdown(Duration::from_secs(5)).await,
            Outcome::Graceful
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn forced_when_a_watcher_hangs_on() {
        let (trigger, watcher) = channel();
        let mut w = watcher;
        let task = tokio::spawn(async move {
            // Ignores Closing, leaves only when forced.
            w.reached(Phase::Forced).await
        });
        let out = trigger.shutdown(Duration::from_millis(50)).await;
        assert_eq!(out, Outcome::Forced);
        assert_eq!(task.await.unwrap(), Phase::Forced);
    }

    #[tokio::test]
    async fn the_state_reads_the_phase_without_holding_the_drain() {
        let (trigger, watcher) = channel();
        let state = trigger.state();
        assert!(!state.is_draining());
        let mut w = watcher.clone();
        let waiting = tokio::spawn(async move { w.next_after(Phase::Running).await });
        trigger.start_draining();
        assert_eq!(waiting.await.unwrap(), Phase::Draining);
        assert!(state.is_draining());
        assert!(watcher.is_draining());
        drop(watcher);
        // Only watchers keep the drain waiting: the state outlives it.
        assert_eq!(
            trigger.shutdown(Duration::from_secs(5)).await,
            Outcome::Graceful
        );
        assert_eq!(state.phase(), Phase::Closing);
        assert!(!State::default().is_draining());
    }

    #[tokio::test]
    async fn the_state_waits_for_a_phase_without_holding_the_drain() {
        let (trigger, watcher) = channel();
        drop(watcher);
        let state = trigger.state();
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.reached(Phase::Closing).await }
        });
        tokio::task::yield_now().await;
        trigger.start_draining();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // Graceful at once: the waiting state is no watcher.
        assert_eq!(
            trigger.shutdown(Duration::from_secs(5)).await,
            Outcome::Graceful
        );
        assert_eq!(waiting.await.unwrap(), Phase::Closing);
        // Already there: returns at once.
        assert_eq!(state.reached(Phase::Draining).await, Phase::Closing);
    }

    #[tokio::test]
    async fn requests_are_idempotent_and_wake_the_waiter() {
        let (request, mut requested) = request_channel();
        let waiting = tokio::spawn(async move { requested.wait().await });
        assert!(request.request());
        assert!(!request.clone().request());
        waiting.await.unwrap();
    }
}
