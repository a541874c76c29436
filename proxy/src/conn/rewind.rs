//! Replaying bytes already read from a connection: the protocol sniff's prefix, and the bytes
//! read past a `101 Switching Protocols` head on either side of a tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project_lite::pin_project! {
    /// Replays `prefix` before reading from `inner` (bytes consumed by protocol sniffing).
    pub struct Rewind<T> {
        prefix: Option<Bytes>,
        #[pin]
        inner: T,
    }
}

impl<T> Rewind<T> {
    /// Wrap `inner`, replaying `prefix` first.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self {
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner,
        }
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.as_mut() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if prefix.is_empty() {
                *this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Rewind<T> {
    super::delegate_writes!();
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

// By hand: an upgraded client connection's transport is a trait object without `Debug`.
impl<T> std::fmt::Debug for Rewind<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewind")
            .field("replay", &self.prefix.as_ref().map_or(0, Bytes::len))
            .finish_non_exhaustive()
    }
}
