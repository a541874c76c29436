//! Per-connection activity: requests in progress, when the connection became idle, whether the
//! last exchange left it reusable, and the parking hand-off between the connection task, the
//! I/O guard and hyper. The request path holds an [`Active`] per request and telemetry ends it
//! when the response completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Per-connection activity shared by the I/O guard, the connection task and the service.
#[derive(Debug)]
pub struct ConnTrack {
    pub(super) epoch: Instant,
    active: AtomicU32,
    /// Milliseconds since `epoch` when the connection last became idle (or 0 = accept).
    idle_since_ms: AtomicU64,
    /// Incremented whenever a request starts, so the guard can tell a new head from an old one.
    generation: AtomicU64,
    /// The connection switched protocols (101): its bytes are no longer HTTP/1 heads.
    upgraded: AtomicBool,
    /// The last request left the connection reusable as it is (see [`Active::end`]).
    reusable: AtomicBool,
    /// Parking hand-off: `PARK_REQUESTED` while the server winds hyper down for a park,
    /// `PARK_HANDED_OFF` once hyper tried to shut the socket down and the guard kept it open.
    park: AtomicU8,
    /// Set by the guard when the connection has been idle for `--park-after`.
    pub(super) park_due: AtomicBool,
}

const PARK_NONE: u8 = 0;
const PARK_REQUESTED: u8 = 1;
const PARK_HANDED_OFF: u8 = 2;

impl ConnTrack {
    /// A fresh tracker, idle from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            reusable: AtomicBool::new(false),
            park: AtomicU8::new(PARK_NONE),
            park_due: AtomicBool::new(false),
        })
    }

    /// The connection was upgraded; the head timeout no longer applies.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    pub(super) fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// A request started on this connection; it lasts until the returned [`Active`] is ended
    /// or dropped.
    pub fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Active {
            track: Some(self.clone()),
        }
    }

    fn end(&self, reusable: bool, now: Instant) {
        self.reusable.store(reusable, Ordering::Release);
        self.idle_since_ms.store(
            now.saturating_duration_since(self.epoch).as_millis() as u64,
            Ordering::Release,
        );
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the last request left the connection parkable.
    pub fn reusable(&self) -> bool {
        self.reusable.load(Ordering::Acquire)
    }

    /// Start winding hyper down for a park: its coming socket shutdown will be kept from the
    /// socket. Returns the request generation, to tell later whether a request slipped in.
    pub fn request_park(&self) -> u64 {
        self.park.store(PARK_REQUESTED, Ordering::Release);
        self.generation()
    }

    /// Whether the guard found the connection due for parking (and clears that).
    pub fn take_park_due(&self) -> bool {
        self.park_due.swap(false, Ordering::AcqRel)
    }

    /// Ends a park attempt; true when hyper finished with the socket left open for us.
    pub fn finish_park(&self) -> bool {
        self.park.swap(PARK_NONE, Ordering::AcqRel) == PARK_HANDED_OFF
    }

    /// Called by the I/O guard when hyper shuts the socket down: true if that shutdown is the
    /// end of a park and must not reach the socket.
    pub(super) fn take_shutdown(&self) -> bool {
        self.park
            .compare_exchange(
                PARK_REQUESTED,
                PARK_HANDED_OFF,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
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

    /// Requests started so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One request in progress on a connection (see [`ConnTrack::begin`]). Ending it records when
/// the connection became idle; dropped without [`Active::end`] (the client went away before the
/// response), it ends as not reusable.
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

    /// The request (response body) finished at `now`. `reusable`: the exchange ended cleanly on
    /// a keep-alive HTTP/1.1 connection with nothing left unread, so the connection may be parked.
    pub fn end(&mut self, reusable: bool, now: Instant) {
        if let Some(track) = self.track.take() {
            track.end(reusable, now);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(track) = self.track.take() {
            track.end(false, Instant::now());
        }
    }
}
