//! Parking an idle HTTP/1 connection: the wait for its next request once hyper has been wound
//! down (see `serve_http1` in the module above), and the per-connection park delay that follows
//! the connection's own request cadence.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};

use super::H1Io;
use super::track::ConnTrack;
use crate::config::Config;
use crate::drain::{Phase, Watcher};
use crate::metrics::Metrics;

/// Upper bound of a connection's park delay (unless the configured delay is longer).
const MAX_PARK_AFTER: Duration = Duration::from_secs(1);

/// Idle gaps up to this long (or twice the configured delay, if longer) are followed.
const FOLLOW_GAP: Duration = Duration::from_millis(250);

/// A followed connection's delay, in idle gaps. More than twice: the park timer of a connection
/// that keeps its cadence fires early once per delay (it is moved lazily, see
/// `deadline::poll_lazily`), a wake-up for nothing, so the longer delay halves those wake-ups.
const FOLLOW_FACTOR: u32 = 4;

/// The park delay for a connection's next idle period, after a park that lasted `parked_for`
/// with the delay `current`; the idle gap that just ended is `current + parked_for`. A
/// connection whose requests come that often (gaps up to [`FOLLOW_GAP`]) gets [`FOLLOW_FACTOR`]
/// times the gap as its delay, up to [`MAX_PARK_AFTER`], so it is not parked again while its
/// cadence holds:
/// parking it would wind hyper down and up, and free and allocate its buffers, for every request
/// (CPU, and latency for the request that meets the wind-down), while the buffers would be
/// needed again within one gap anyway. A longer gap restores the configured `base`: a connection
/// that idles longer is parked `base` after each exchange, so sparse traffic keeps the small
/// idle footprint.
pub(super) fn next_park_after(
    base: Option<Duration>,
    current: Option<Duration>,
    parked_for: Duration,
) -> Option<Duration> {
    let (base, current) = (base?, current?);
    let gap = current.saturating_add(parked_for);
    if gap <= FOLLOW_GAP.max(base.saturating_mul(2)) {
        Some(
            gap.saturating_mul(FOLLOW_FACTOR)
                .clamp(base, MAX_PARK_AFTER.max(base)),
        )
    } else {
        Some(base)
    }
}

/// Bytes read per wake-up of a parked connection; the rest of the request is read by hyper.
const PARK_READ: usize = 128;

/// Waits on a parked connection for the first bytes of the next request. `None` when the client
/// closed it, it stayed idle past the idle timeout, or the drain is closing connections.
pub(super) async fn park<IO>(
    io: &mut H1Io<IO>,
    cfg: &Config,
    metrics: &Metrics,
    track: &ConnTrack,
    drain: &mut Watcher,
) -> Option<Bytes>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let idle_deadline = track.idle_deadline(cfg.idle_timeout);
    let mut buf = [0u8; PARK_READ];
    let parked = &metrics.parked_connections;
    parked.inc();
    metrics.parks.inc();
    let first = tokio::select! {
        // A request that has arrived is served (with `Connection: close` while draining) rather
        // than cut off by a drain phase or deadline that became due at the same moment.
        biased;
        read = io.read(&mut buf) => match read {
            Ok(n) if n > 0 => Some(Bytes::copy_from_slice(&buf[..n])),
            _ => None,
        },
        _ = drain.reached(Phase::Closing) => None,
        () = tokio::time::sleep_until(idle_deadline) => None,
    };
    parked.dec();
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_delay_follows_a_short_cadence() {
        let base = Some(10 * MS);
        // Requests 32 ms apart: parked once, then the delay is four gaps.
        assert_eq!(next_park_after(base, base, 22 * MS), Some(128 * MS));
        // Woken right after parking: at least four times the delay it had.
        assert_eq!(next_park_after(base, Some(64 * MS), 2 * MS), Some(264 * MS));
        assert_eq!(
            next_park_after(base, Some(200 * MS), 40 * MS),
            Some(960 * MS)
        );
        // Up to the cap; a longer configured delay follows gaps up to twice itself.
        let long = Some(400 * MS);
        assert_eq!(next_park_after(long, long, 200 * MS), Some(MAX_PARK_AFTER));
    }

    #[test]
    fn a_long_gap_restores_the_configured_delay() {
        let base = Some(10 * MS);
        assert_eq!(next_park_after(base, Some(MAX_PARK_AFTER), 5 * MS), base);
        assert_eq!(next_park_after(base, base, 300 * MS), base);
        assert_eq!(next_park_after(base, Some(132 * MS), 30 * MS * 60), base);
        // Parking off stays off; a base above the cap is never lowered.
        assert_eq!(next_park_after(None, None, MS), None);
        let big = Some(5 * MAX_PARK_AFTER);
        assert_eq!(next_park_after(big, big, MS), big);
        let mid = Some(200 * MS);
        assert_eq!(next_park_after(mid, mid, MS), Some(804 * MS));
    }
}
