//! Drain coordination in ztunnel's style: one trigger, many watchers, two phases.
//!
//! Every connection task (and every upgraded tunnel) holds a [`Watcher`]. The trigger moves the
//! phase forward: [`Phase::Draining`] (SIGTERM received: keep serving, but close HTTP/1
//! connections after each response and send HTTP/2 a graceful GOAWAY), then [`Phase::Closing`]
//! (listener closed, every connection shut down gracefully, in-flight requests finish), then
//! [`Phase::Forced`] once the drain timeout expires (remaining connections are dropped). The
//! trigger knows everything finished when all watchers are gone (`watch::Sender::closed`).

use std::time::Duration;

use tokio::sync::watch;

/// Lifecycle phase, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// Moves the phase forward and waits for watchers.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<Phase>,
}

/// Observes the phase; its existence keeps the drain waiting.
#[derive(Debug, Clone)]
pub struct Watcher {
    rx: watch::Receiver<Phase>,
}

/// A new trigger and its first watcher.
pub fn channel() -> (Trigger, Watcher) {
    let (tx, rx) = watch::channel(Phase::Running);
    (Trigger { tx }, Watcher { rx })
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
    /// Enter [`Phase::Draining`].
    pub fn start_draining(&self) {
        self.tx.send_if_modified(|p| {
            if *p < Phase::Draining {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }

    /// Enter [`Phase::Closing`] and wait up to `timeout` for every watcher to go away; then enter
    /// [`Phase::Forced`] and give tasks a moment to drop their connections.
    pub async fn shutdown(self, timeout: Duration) -> Outcome {
        self.tx.send_replace(Phase::Closing);
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
        self.tx.send_replace(Phase::Forced);
        // Forced tasks return at their next poll; this bound only guards against a stuck task.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.tx.closed()).await;
        Outcome::Forced
    }

    /// A new watcher (e.g. for the accept loop).
    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
        }
    }
}

impl Watcher {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Wait until the phase is at least `phase` (returns at once if it already is).
    pub async fn reached(&mut self, phase: Phase) -> Phase {
        match self.rx.wait_for(|p| *p >= phase).await {
            Ok(p) => *p,
            // The trigger is gone: treat as forced so tasks end.
            Err(_) => Phase::Forced,
        }
    }

    /// Wait for the next phase change after `current`.
    pub async fn next_after(&mut self, current: Phase) -> Phase {
        match self.rx.wait_for(|p| *p > current).await {
            Ok(p) => *p,
            Err(_) => Phase::Forced,
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
}
