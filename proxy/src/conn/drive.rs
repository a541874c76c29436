//! Driving hyper's HTTP/2 connection future: a GOAWAY as soon as draining starts, dropped when
//! the drain is forced, and the idle timeout.

use std::pin::Pin;

use hyper::server::conn::http2;
use hyper_util::rt::TokioExecutor;

use super::track::ConnTrack;
use crate::config::Config;
use crate::drain::{Phase, Watcher};
use crate::wake::OnOwnWake;

/// Runs an HTTP/2 connection through the drain phases and the idle timeout.
pub(super) async fn drive<I, S>(
    mut conn: Pin<Box<http2::Connection<I, S, TokioExecutor>>>,
    cfg: &Config,
    track: &ConnTrack,
    mut drain: Watcher,
) where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send,
    S::ResBody: Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    <S::ResBody as http_body::Body>::Data: Send,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    let idle_timeout = cfg.idle_timeout;
    let mut phase = drain.phase();
    let mut shut = false;
    loop {
        if phase >= Phase::Draining && !shut {
            conn.as_mut().graceful_shutdown();
            shut = true;
        }
        if phase == Phase::Forced {
            return;
        }
        let idle_deadline = track.idle_deadline(idle_timeout);
        tokio::select! {
            // The connection is polled first on every wake-up (most are for it); `biased` also
            // spares the random branch order, a thread-local access per wake-up.
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            // Polled only when they woke the task, not at every read and write of the connection.
            p = OnOwnWake::new(drain.next_after(phase)) => phase = p,
            () = OnOwnWake::new(tokio::time::sleep_until(idle_deadline)), if !shut => {
                if track.idle_since().is_some_and(|s| s.elapsed() >= idle_timeout) {
                    conn.as_mut().graceful_shutdown();
                    shut = true;
                }
            }
        }
    }
}
