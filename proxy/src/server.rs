//! Inbound listener: accept, optional TLS handshake, protocol selection (ALPN over TLS, the
//! HTTP/2 connection preface for plaintext h2c), and one task per connection that serves it with
//! hyper and reacts to idle timeouts and drain phases.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::coalesce::Coalesce;
use crate::deadline::ConnTimer;
use crate::drain::{Phase, Watcher};
use crate::io::{ConnTrack, HeadGuard, Rewind};
use crate::metrics::{ConnLabels, Protocol};
use crate::proxy::{self, ConnInfo, Shared};
use crate::tls;
use crate::wake::OnOwnWake;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accept connections until the drain reaches [`Phase::Closing`].
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<TlsAcceptor>,
    mut drain: Watcher,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = drain.reached(Phase::Closing) => break,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Coalesce::new(stream);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => serve_tls(stream, client, shared, acceptor, drain).await,
                None => serve_plain(stream, client, shared, drain).await,
            }
        });
    }
    tracing::info!("inbound listener closed");
}

async fn serve_tls(
    stream: Coalesce<TcpStream>,
    client: SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    drain: Watcher,
) {
    let timeout = shared.config.header_read_timeout;
    // Boxed: the handshake state is large and must not size every plaintext connection's task.
    let tls = match tokio::time::timeout(timeout, Box::pin(acceptor.accept(stream))).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = tls::handshake_reason(&e);
            tls::count_handshake_error(&shared.metrics, reason);
            tracing::debug!(%client, error = %e, reason, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tls::count_handshake_error(&shared.metrics, "timeout");
            return;
        }
    };
    let protocol = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::H2,
        _ => Protocol::Http1,
    };
    Box::pin(serve_conn(
        tls,
        Bytes::new(),
        protocol,
        true,
        client,
        shared,
        drain,
    ))
    .await;
}

async fn serve_plain(
    mut stream: Coalesce<TcpStream>,
    client: SocketAddr,
    shared: Arc<Shared>,
    drain: Watcher,
) {
    // Read just enough to tell the h2c preface from an HTTP/1 request line.
    let mut buf = [0u8; 24];
    let mut n = 0;
    let timeout = shared.config.header_read_timeout;
    let sniff = async {
        while n < H2_PREFACE.len() {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => n += k,
            }
            if buf[..n] != H2_PREFACE[..n] {
                break;
            }
        }
        true
    };
    // Closed before sending anything: nothing to answer. Partial data then EOF or a timeout
    // falls through to the HTTP/1 path, which answers 400/408.
    if let Ok(false) = tokio::time::timeout(timeout, sniff).await
        && n == 0
    {
        return;
    }
    let protocol = if n == H2_PREFACE.len() && buf == *H2_PREFACE {
        Protocol::H2
    } else {
        Protocol::Http1
    };
    let prefix = Bytes::copy_from_slice(&buf[..n]);
    serve_conn(stream, prefix, protocol, false, client, shared, drain).await;
}

/// Shutdown hooks common to hyper's HTTP/1 and HTTP/2 connection futures.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
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

async fn serve_conn<IO>(
    io: IO,
    prefix: Bytes,
    protocol: Protocol,
    tls: bool,
    client: SocketAddr,
    shared: Arc<Shared>,
    drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let labels = ConnLabels { protocol, tls };
    shared.metrics.conn_opened(&labels);
    let track = ConnTrack::new();
    let info = Arc::new(ConnInfo {
        client,
        forwarded_for: crate::headers::forwarded_for(client.ip()),
        tls,
        protocol,
        track: track.clone(),
        drain: drain.clone(),
        request_timer: (protocol == Protocol::Http1).then(ConnTimer::default),
    });
    let cfg = &shared.config;
    let io = Rewind::new(prefix, io);
    match protocol {
        Protocol::Http1 => {
            let timed_out = Arc::new(AtomicBool::new(false));
            let io = HeadGuard::new(
                io,
                track.clone(),
                cfg.header_read_timeout,
                timed_out.clone(),
            );
            serve_http1(io, &shared, info, &track, drain).await;
            if timed_out.load(std::sync::atomic::Ordering::Acquire) {
                shared
                    .metrics
                    .local_responses
                    .get_or_create(&crate::metrics::ReasonLabels {
                        reason: "header_timeout",
                    })
                    .inc();
            }
        }
        Protocol::H2 => {
            // Boxed, like the HTTP/1 connection: the task's own allocation then stays small.
            let conn = Box::pin(
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(cfg.max_header_bytes as u32)
                    .max_concurrent_streams(256)
                    .serve_connection(TokioIo::new(io), proxy::service(shared.clone(), info)),
            );
            let _ = drive(conn, protocol, &shared, &track, drain).await;
        }
    }
    shared.metrics.conn_closed(&labels);
}

type H1Io<IO> = HeadGuard<Rewind<IO>>;

/// Serves an HTTP/1 connection. While requests come, hyper owns it; once it has been idle for
/// `--park-after` it is *parked*: hyper is wound down and its read and write buffers (8 KiB
/// each, which hyper keeps for the life of a connection) are freed, and the connection waits
/// for its next request in a small read of its own. The bytes of that read are replayed into a
/// fresh hyper connection. An idle keep-alive connection thus costs about 2 KiB (its task)
/// instead of ~20 KiB; nginx does the same with its header buffers.
async fn serve_http1<IO>(
    mut io: H1Io<IO>,
    shared: &Arc<Shared>,
    info: Arc<ConnInfo>,
    track: &ConnTrack,
    mut drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut park_after = cfg.park_after;
    loop {
        io.set_park_after(park_after);
        io.new_http_conn();
        let conn = Box::pin(
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true)
                .max_buf_size(cfg.max_header_bytes.max(8192))
                .max_headers(cfg.max_headers)
                .serve_connection(
                    TokioIo::new(io),
                    proxy::service(shared.clone(), info.clone()),
                )
                .with_upgrades(),
        );
        let (conn, close) = match drive(conn, Protocol::Http1, shared, track, drain.clone()).await {
            Ended::Closed => return,
            Ended::Parked(c) => (c, false),
            Ended::MustClose(c) => (c, true),
        };
        // hyper is between requests and has flushed its last response.
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return;
        };
        io = parts.io.into_inner();
        let next = if close {
            None
        } else if !parts.read_buf.is_empty() {
            // The start of the next request was already read: no wait.
            Some(parts.read_buf)
        } else {
            drop(parts.read_buf); // hyper's read buffer, freed before the wait
            let parked_at = tokio::time::Instant::now();
            let next = park(&mut io, shared, track, &mut drain).await;
            park_after = next_park_after(cfg.park_after, park_after, parked_at.elapsed());
            next
        };
        let Some(next) = next else {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            return;
        };
        io.get_mut().unread(next);
    }
}

/// Upper bound of a connection's backed-off park delay.
const MAX_PARK_AFTER: Duration = Duration::from_secs(1);

/// The park delay for a connection's next idle period, after a park that lasted `parked_for`.
/// A request that comes back before the current delay has passed again means the connection's
/// requests come about one delay apart: parking it at the same delay would wind hyper down and
/// up for every request (CPU, plus latency for the request that meets a wind-down). So the
/// delay doubles (up to [`MAX_PARK_AFTER`]); a longer park restores the configured `base`.
fn next_park_after(
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
async fn park<IO>(
    io: &mut H1Io<IO>,
    shared: &Shared,
    track: &ConnTrack,
    drain: &mut Watcher,
) -> Option<Bytes>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let idle_deadline = track.idle_deadline(shared.config.idle_timeout);
    let mut buf = [0u8; PARK_READ];
    let parked = &shared.metrics.parked_connections;
    parked.inc();
    shared.metrics.parks.inc();
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

/// How a connection driven by [`drive`] ended.
enum Ended<C: ?Sized> {
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
fn count_rejected_head(shared: &Shared, e: &hyper::Error) {
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
    let m = &shared.metrics;
    m.count_request(crate::metrics::Method::Other, status_code);
    m.local_responses
        .get_or_create(&crate::metrics::ReasonLabels { reason })
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
async fn drive<C: Graceful + ?Sized>(
    mut conn: Pin<Box<C>>,
    protocol: Protocol,
    shared: &Shared,
    track: &ConnTrack,
    mut drain: Watcher,
) -> Ended<C> {
    let idle_timeout = shared.config.idle_timeout;
    let mut phase = drain.phase();
    let mut shut = false;
    // The request generation when parking began; a request started after that got
    // `Connection: close` from hyper, so the connection must close, not park.
    let mut parking: Option<u64> = None;
    loop {
        // HTTP/2 gets its GOAWAY as soon as draining starts; HTTP/1 gets `Connection: close` on
        // each response (see proxy.rs) and idle ones are closed once the listener closes.
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
                        count_rejected_head(shared, e);
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
