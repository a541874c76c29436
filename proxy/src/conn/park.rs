//! Parking an idle HTTP/1 connection: the wait for its next request once hyper has been wound
//! down (see `serve_http1` in the module above), and the per-connection park delay that backs off
//! for connections whose requests come about one delay apart.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};

use super::H1Io;
use super::track::ConnTrack;
use crate::config::Config;
use crate::drain::{Phase, Watcher};
use crate::metrics::Metrics;

/// Upper bound of a connection's backed-off park delay.
const MAX_PARK_AFTER: Duration = Duration::from_secs(1);

/// The park delay for a connection's next idle period, after a park that lasted `parked_for`.
/// A request that comes back before the current delay has passed again means the connection's
/// requests come about one delay apart: parking it at the same delay would wind hyper down and
/// up for every request (CPU, plus latency for the request that meets a wind-down). So the
/// delay doubles (up to [`MAX_PARK_AFTER`]); a longer park restores the configured `base`.
pub(super) fn next_park_after(
    base: Option<Duration>,
    current: Option<Duration>,
    parked_for: Duration,
) -> Option<Duration> {
    let (base, current) = (base?, current?);
    if parked_for < current {
        Some((current * 2).min(MAX_PARK_AFTER.max(base)))
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
    fn park_delay_backs_off_for_connections_woken_right_after_parking() {
        let base = Some(10 * MS);
        assert_eq!(next_park_after(base, base, 2 * MS), Some(20 * MS));
        assert_eq!(next_park_after(base, Some(20 * MS), 5 * MS), Some(40 * MS));
        assert_eq!(
            next_park_after(base, Some(800 * MS), 5 * MS),
            Some(MAX_PARK_AFTER)
        );
        assert_eq!(
            next_park_after(base, Some(MAX_PARK_AFTER), 5 * MS),
            Some(MAX_PARK_AFTER)
        );
    }

    #[test]
    fn a_long_park_restores_the_configured_delay() {
        let base = Some(10 * MS);
        assert_eq!(next_park_after(base, Some(640 * MS), 640 * MS), base);
        assert_eq!(next_park_after(base, base, 11 * MS), base);
        // Parking off stays off; a base above the cap is never lowered by backing off.
        assert_eq!(next_park_after(None, None, MS), None);
        let big = Some(5 * MAX_PARK_AFTER);
        assert_eq!(next_park_after(big, big, MS), big);
    }
}
