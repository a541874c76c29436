//! Per-connection activity: requests in progress and when the connection became idle. The
//! request path holds an [`Active`] per request and telemetry ends it when the response
//! completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Per-connection activity shared by the connection task and the request path.
#[derive(Debug)]
pub struct ConnTrack {
    epoch: Instant,
    active: AtomicU32,
    /// Milliseconds since `epoch` when the connection last became idle (or 0 = accept).
    idle_since_ms: AtomicU64,
}

impl ConnTrack {
    /// A fresh tracker, idle from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// A request started on this connection; it lasts until the returned [`Active`] is ended
    /// or dropped.
    pub fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        Active {
            track: Some(self.clone()),
        }
    }

    fn end(&self, now: Instant) {
        self.idle_since_ms.store(
            now.saturating_duration_since(self.epoch).as_millis() as u64,
            Ordering::Release,
        );
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

    /// When the connection's idle timeout runs out: `timeout` after it became idle, or from
    /// now while a request is in progress (re-checked when that deadline passes).
    pub fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.idle_since()
            .map_or_else(|| Instant::now() + timeout, |since| since + timeout)
    }
}

/// One request in progress on a connection (see [`ConnTrack::begin`]). Ending it records when
/// the connection became idle; dropped without [`Active::end`] (the client went away before the
/// response), it ends then.
#[derive(Debug)]
pub struct Active {
    track: Option<Arc<ConnTrack>>,
}

impl Active {
    /// Hands the request over to a new owner; this one is left ended.
    #[must_use]
    pub fn take(&mut self) -> Self {
        Self {
            track: self.track.take(),
        }
    }

    /// Whether the request has not been ended (or handed over) yet.
    pub fn is_open(&self) -> bool {
        self.track.is_some()
    }

    /// The request (response body) finished at `now`.
    pub fn end(&mut self, now: Instant) {
        if let Some(track) = self.track.take() {
            track.end(now);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(track) = self.track.take() {
            track.end(Instant::now());
        }
    }
}
