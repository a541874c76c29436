//! How the proxy's bytes reach a TCP socket: a write is one `send`, not a `writev`, unless it is
//! large.
//!
//! hyper queues a message as several buffers (the encoded head, then each body chunk) and hands
//! them to `poll_write_vectored`; rustls does the same with its records. tokio turns that into
//! `writev`, which reaches the socket through the generic file-write path (iovec import, VFS
//! checks), while `send` goes to the socket directly: ~0.2 µs less kernel time per small write on
//! this project's benchmark machine (`bench/proxy-syscalls.sh`), and a proxied request makes
//! two. So a write of one non-empty buffer goes to `poll_write`, and a write of several small
//! buffers (a head and a small body) is first copied into one stack buffer; only multi-buffer
//! writes larger than [`COALESCE_MAX`] stay vectored, where the copy would cost more than the
//! syscall saves. hyper keeps its default queueing write strategy (its flattening one would copy
//! every body chunk, large ones too, into its own buffer).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Multi-buffer writes up to this size are copied into one buffer and sent at once. A response
/// head with a small body fits; the copy costs far less than the syscall difference.
pub const COALESCE_MAX: usize = 4096;

/// Wraps a socket so that its writes are single-buffer writes (see the module doc).
#[derive(Debug)]
pub struct Coalesce<T> {
    inner: T,
}

impl<T> Coalesce<T> {
    /// Wrap `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = nonempty.next() else {
            return Poll::Ready(Ok(0));
        };
        if nonempty.next().is_none() {
            return Pin::new(&mut self.inner).poll_write(cx, first);
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total > COALESCE_MAX {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        // Uninitialised stack space: zeroing 4 KiB per write would cost more than the copy.
        let mut joined: SmallVec<[u8; COALESCE_MAX]> = SmallVec::new();
        for b in bufs {
            joined.extend_from_slice(b);
        }
        // A short write reports how much of the joined bytes went out, which is exactly how far
        // the caller's buffers advanced.
        Pin::new(&mut self.inner).poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        // Callers should keep handing over several buffers: the choice is made here, per write.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Records which write call each write arrived through.
    #[derive(Default)]
    struct Recorder {
        plain: Vec<Vec<u8>>,
        vectored: Vec<Vec<Vec<u8>>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.plain.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.vectored
                .push(bufs.iter().map(|b| b.to_vec()).collect());
            Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_buffers_go_out_as_one_plain_write() {
        let mut w = Coalesce::new(Recorder::default());
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n";
        let n = w
            .write_vectored(&[
                IoSlice::new(head),
                IoSlice::new(b""),
                IoSlice::new(b"hello world\n"),
            ])
            .await
            .unwrap();
        assert_eq!(n, head.len() + 12);
        let r = w.get_ref();
        assert!(r.vectored.is_empty());
        assert_eq!(r.plain, vec![[&head[..], b"hello world\n"].concat()]);
    }

    #[tokio::test]
    async fn one_nonempty_buffer_is_passed_as_it_is() {
        let mut w = Coalesce::new(Recorder::default());
        let n = w
            .write_vectored(&[IoSlice::new(b""), IoSlice::new(b"GET / HTTP/1.1\r\n\r\n")])
            .await
            .unwrap();
        assert_eq!(n, 18);
        assert_eq!(w.get_ref().plain, vec![b"GET / HTTP/1.1\r\n\r\n".to_vec()]);
        assert_eq!(w.write_vectored(&[IoSlice::new(b"")]).await.unwrap(), 0);
        assert!(w.get_ref().vectored.is_empty());
    }

    #[tokio::test]
    async fn large_writes_stay_vectored() {
        let mut w = Coalesce::new(Recorder::default());
        let body = vec![7u8; COALESCE_MAX];
        let n = w
            .write_vectored(&[IoSlice::new(b"head"), IoSlice::new(&body)])
            .await
            .unwrap();
        assert_eq!(n, 4 + COALESCE_MAX);
        let r = w.get_ref();
        assert!(r.plain.is_empty());
        assert_eq!(r.vectored, vec![vec![b"head".to_vec(), body]]);
    }

    #[tokio::test]
    async fn a_short_write_counts_bytes_of_the_joined_buffers() {
        // The pipe takes 8 bytes: the write ends inside the second buffer.
        let (a, mut b) = tokio::io::duplex(8);
        let mut w = Coalesce::new(a);
        let n = w
            .write_vectored(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
            .await
            .unwrap();
        assert_eq!(n, 8);
        let mut got = [0u8; 8];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello wo");
    }

    #[tokio::test]
    async fn bytes_cross_a_real_socket_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut w = Coalesce::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            let big = vec![b'x'; 3 * COALESCE_MAX];
            for bufs in [
                vec![IoSlice::new(b"a"), IoSlice::new(b"bc")],
                vec![IoSlice::new(b"d"), IoSlice::new(&big), IoSlice::new(b"e")],
            ] {
                let total: usize = bufs.iter().map(|b| b.len()).sum();
                let mut sent = 0;
                while sent < total {
                    // Re-slice past what went out, as hyper does after a short write.
                    let mut rest = Vec::new();
                    let mut skip = sent;
                    for b in &bufs {
                        if skip >= b.len() {
                            skip -= b.len();
                        } else {
                            rest.push(IoSlice::new(&b[skip..]));
                            skip = 0;
                        }
                    }
                    sent += w.write_vectored(&rest).await.unwrap();
                }
            }
            w.shutdown().await.unwrap();
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        client.await.unwrap();
        let want = [&b"abcd"[..], &vec![b'x'; 3 * COALESCE_MAX], b"e"].concat();
        assert_eq!(got, want);
    }
}
