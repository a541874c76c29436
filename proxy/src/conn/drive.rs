//! Driving hyper's connection future: the drain phases (GOAWAY for HTTP/2 as soon as draining
//! starts, a graceful shutdown for every connection once the listener closes, dropped when the
//! drain is forced), the idle timeout, and winding an HTTP/1 connection down when its guard
//! reports it due for parking.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioExecutor;

use super::track::ConnTrack;
use crate::config::Config;
use crate::drain::{Phase, Watcher};
use crate::metrics::{Method, Metrics, Protocol, ReasonLabels};
use crate::wake::OnOwnWake;

/// Shutdown hooks common to hyper's HTTP/1 and HTTP/2 connection futures.
pub(super) trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    <S::ResBody as http_body::Body>::Data: Send,
    I: Send,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How a connection driven by [`drive`] ended.
pub(super) enum Ended<C: ?Sized> {
    /// Finished; hyper closed the socket (or the connection was abandoned at the forced deadline).
    Closed,
    /// Wound down between requests with the socket open, for parking.
    Parked(Pin<Box<C>>),
    /// Wound down with the socket open, but it must be closed.
    MustClose(Pin<Box<C>>),
}

/// hyper answers a request head it cannot parse itself (400, 414 or 431) and ends the
/// connection with the parse error; count those like the proxy's own answers. The method is
/// unknown at that point (`other`).
fn count_rejected_head(metrics: &Metrics, e: &hyper::Error) {
    if !e.is_parse() || e.is_parse_version_h2() || e.is_parse_status() {
        return;
    }
    let (status_code, reason) = if e.is_parse_too_large() {
        // hyper's only public tell between the two kinds is the message.
        if e.to_string().contains("URI too long") {
            (414, "uri_too_long")
        } else {
            (431, "headers_too_large")
        }
    } else if e.to_string().contains("internal error inside Hyper") {
        return; // hyper answers nothing for its internal parse errors
    } else {
        (400, "malformed_request")
    };
    metrics.count_request(Method::Other, status_code);
    metrics
        .local_responses
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// What polling a connection produced.
enum Polled {
    Done(Result<(), hyper::Error>),
    /// The I/O guard saw the connection idle for `--park-after` after a reusable exchange.
    ParkDue,
}

/// Runs a connection through the drain phases and the idle timeout. An HTTP/1 connection whose
/// guard reports it due for parking is wound down and handed back with its socket open.
pub(super) async fn drive<C: Graceful + ?Sized>(
    mut conn: Pin<Box<C>>,
    protocol: Protocol,
    cfg: &Config,
    metrics: &Metrics,
    track: &ConnTrack,
    mut drain: Watcher,
) -> Ended<C> {
    let idle_timeout = cfg.idle_timeout;
    let mut phase = drain.phase();
    let mut shut = false;
    // The request generation when parking began; a request started after that got
    // `Connection: close` from hyper, so the connection must close, not park.
    let mut parking: Option<u64> = None;
    loop {
        // HTTP/2 gets its GOAWAY as soon as draining starts; HTTP/1 gets `Connection: close` on
        // each response (see forward.rs) and idle ones are closed once the listener closes.
        let want_shutdown = match phase {
            Phase::Running => false,
            Phase::Draining => protocol == Protocol::H2,
            Phase::Closing | Phase::Forced => true,
        };
        if want_shutdown && !shut {
            conn.as_mut().graceful();
            shut = true;
        }
        if phase == Phase::Forced {
            return Ended::Closed;
        }
        let idle_deadline = track.idle_deadline(idle_timeout);
        let polled = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
            Poll::Ready(res) => Poll::Ready(Polled::Done(res)),
            // The guard flags a due park from inside this very poll (hyper flushing or reading
            // while idle).
            Poll::Pending if track.take_park_due() => Poll::Ready(Polled::ParkDue),
            Poll::Pending => Poll::Pending,
        });
        tokio::select! {
            // The connection is polled first on every wake-up (most are for it); `biased` also
            // spares the random branch order, a thread-local access per wake-up.
            biased;
            polled = polled => match polled {
                Polled::Done(res) => {
                    if let Err(e) = &res {
                        tracing::debug!(error = %e, "connection ended with error");
                        count_rejected_head(metrics, e);
                    }
                    let handed_off = parking.is_some() && track.finish_park();
                    let clean = res.is_ok() && parking == Some(track.generation());
                    return match (handed_off, clean) {
                        (true, true) => Ended::Parked(conn),
                        // A request slipped in and was answered with `Connection: close`; hyper's
                        // shutdown of the socket was held back for the park, so it is still owed.
                        (true, false) => Ended::MustClose(conn),
                        _ => Ended::Closed,
                    };
                }
                Polled::ParkDue => {
                    if !shut && phase == Phase::Running && track.active() == 0 {
                        parking = Some(track.request_park());
                        conn.as_mut().graceful();
                        shut = true;
                    }
                }
            },
            // Polled only when they woke the task, not at every read and write of the connection.
            p = OnOwnWake::new(drain.next_after(phase)) => phase = p,
            () = OnOwnWake::new(tokio::time::sleep_until(idle_deadline)), if !shut => {
                if track.idle_since().is_some_and(|s| s.elapsed() >= idle_timeout) {
                    conn.as_mut().graceful();
                    shut = true;
                }
            }
        }
    }
}
