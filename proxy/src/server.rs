//! Inbound listener: accept, optional TLS handshake, protocol selection (ALPN over TLS, the
//! HTTP/2 connection preface for plaintext h2c), then one task per connection, handed to
//! [`conn::serve`] with the request path ([`forward::service`]) as its hyper service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::coalesce::Coalesce;
use crate::conn::{self, Serving};
use crate::drain::{Phase, Watcher};
use crate::forward;
use crate::metrics::Protocol;
use crate::shared::Shared;
use crate::tls;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accept connections until the drain reaches [`Phase::Closing`].
pub async fn serve<R: forward::Router>(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: R,
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
        let router = router.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => serve_tls(stream, client, shared, router, acceptor, drain).await,
                None => serve_plain(stream, client, shared, router, drain).await,
            }
        });
    }
    tracing::info!("inbound listener closed");
}

async fn serve_tls<R: forward::Router>(
    stream: Coalesce<TcpStream>,
    client: SocketAddr,
    shared: Arc<Shared>,
    router: R,
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
        router,
        drain,
    ))
    .await;
}

async fn serve_plain<R: forward::Router>(
    mut stream: Coalesce<TcpStream>,
    client: SocketAddr,
    shared: Arc<Shared>,
    router: R,
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
    serve_conn(
        stream, prefix, protocol, false, client, shared, router, drain,
    )
    .await;
}

/// Serves the connection with the request path as its hyper service.
#[allow(
    clippy::too_many_arguments,
    reason = "one connection's parts, passed down once"
)]
async fn serve_conn<IO, R: forward::Router>(
    io: IO,
    prefix: Bytes,
    protocol: Protocol,
    tls: bool,
    client: SocketAddr,
    shared: Arc<Shared>,
    router: R,
    drain: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let serving = Serving {
        cfg: &shared.config,
        metrics: &shared.metrics,
        service: |info| forward::service(shared.clone(), router.clone(), info),
    };
    conn::serve(io, prefix, protocol, tls, client, serving, drain).await;
}
