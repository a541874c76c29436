//! Inbound listener: accept, optional TLS handshake, protocol selection (ALPN over TLS, the
//! HTTP/2 connection preface for plaintext h2c), and one task per connection that serves it with
//! hyper and reacts to idle timeouts and drain phases.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::drain::{Phase, Watcher};
use crate::io::{ConnTrack, HeadGuard, Rewind};
use crate::metrics::{ConnLabels, Protocol};
use crate::proxy::{ConnInfo, ProxyService, Shared};
use crate::tls;

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
    stream: TcpStream,
    client: SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    drain: Watcher,
) {
    let timeout = shared.config.header_read_timeout;
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
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
    serve_conn(tls, Bytes::new(), protocol, true, client, shared, drain).await;
}

async fn serve_plain(
    mut stream: TcpStream,
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
        tls,
        protocol,
        track: track.clone(),
        drain: drain.clone(),
    });
    let svc = ProxyService {
        shared: shared.clone(),
        conn: info,
    };
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
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true)
                .max_buf_size(cfg.max_header_bytes.max(8192))
                .max_headers(cfg.max_headers)
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades();
            drive(conn, protocol, &shared, &track, drain).await;
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
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(cfg.max_header_bytes as u32)
                .max_concurrent_streams(256)
                .serve_connection(TokioIo::new(io), svc);
            drive(conn, protocol, &shared, &track, drain).await;
        }
    }
    shared.metrics.conn_closed(&labels);
}

async fn drive<C: Graceful>(
    conn: C,
    protocol: Protocol,
    shared: &Shared,
    track: &ConnTrack,
    mut drain: Watcher,
) {
    let idle_timeout = shared.config.idle_timeout;
    tokio::pin!(conn);
    let mut phase = drain.phase();
    let mut shut = false;
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
            return;
        }
        let idle_deadline = track.idle_since().map_or_else(
            || tokio::time::Instant::now() + idle_timeout,
            |since| since + idle_timeout,
        );
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            p = drain.next_after(phase) => phase = p,
            () = tokio::time::sleep_until(idle_deadline), if !shut => {
                if track.idle_since().is_some_and(|s| s.elapsed() >= idle_timeout) {
                    conn.as_mut().graceful();
                    shut = true;
                }
            }
        }
    }
}
