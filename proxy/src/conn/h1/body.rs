//! The HTTP/1 request body, read from the connection while the request path polls it. For the
//! length of an exchange with a body the connection's [`Wire`] is lent to a shared slot
//! ([`Exchange`]) which both the body and the response writer reach (one task: never contended);
//! bodyless requests never build one. `100 Continue` is sent when the body is first polled.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::READ_CHUNK;
use crate::chunked::ChunkedDecoder;

/// Errors of an HTTP/1 request body.
#[derive(Debug, thiserror::Error)]
pub enum H1BodyError {
    /// Reading from or writing to the client failed.
    #[error("client connection I/O failed")]
    Io(#[source] io::Error),
    /// The client closed the connection before the body was complete.
    #[error("the client closed the connection before the request body was complete")]
    Closed,
    /// The chunked coding was malformed.
    #[error("invalid chunked encoding in the request body")]
    Chunked,
    /// The connection was taken away from the body (the exchange ended).
    #[error("the request body outlived its connection")]
    Gone,
}

/// The connection's socket and the bytes read past what has been parsed (a partial head, body
/// bytes, pipelined requests). The buffer is empty (unallocated) between exchanges unless the
/// client sent ahead.
pub(super) struct Wire<IO> {
    pub io: IO,
    pub ahead: BytesMut,
}

impl<IO> Wire<IO> {
    /// Keeps `rest` for the next parse, in a buffer sized to it.
    pub fn keep(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.ahead.extend_from_slice(rest);
        }
    }

    /// Consumes `n` bytes of `ahead`, releasing its allocation once it is empty.
    pub fn consume(&mut self, n: usize) {
        if n >= self.ahead.len() {
            self.ahead = BytesMut::new();
        } else {
            self.ahead.advance(n);
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

enum Decode {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The body's reading state.
pub(super) struct Reader {
    decode: Decode,
    /// Bytes of `100 Continue` still to write (`None`: none owed).
    continue_at: Option<usize>,
    done: bool,
    trailers: Option<HeaderMap>,
}

impl Reader {
    pub fn length(n: u64, expect_continue: bool) -> Self {
        Self::new(Decode::Length(n), expect_continue)
    }

    pub fn chunked(expect_continue: bool) -> Self {
        Self::new(Decode::Chunked(ChunkedDecoder::default()), expect_continue)
    }

    fn new(decode: Decode, expect_continue: bool) -> Self {
        Self {
            decode,
            continue_at: expect_continue.then_some(0),
            done: false,
            trailers: None,
        }
    }

    /// Whether the whole body has been read off the connection.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes what `input` holds of the body: data (possibly empty) and the bytes used.
    fn take(&mut self, input: &[u8]) -> Result<(Bytes, usize), H1BodyError> {
        match &mut self.decode {
            Decode::Length(rest) => {
                let n = input
                    .len()
                    .min(usize::try_from(*rest).unwrap_or(usize::MAX));
                *rest -= n as u64;
                self.done = *rest == 0;
                Ok((Bytes::copy_from_slice(&input[..n]), n))
            }
            Decode::Chunked(dec) => {
                let mut data = BytesMut::with_capacity(input.len());
                let used = dec
                    .decode(input, &mut data)
                    .map_err(|_| H1BodyError::Chunked)?;
                if dec.is_done() {
                    self.done = true;
                    self.trailers = dec.take_trailers();
                }
                Ok((data.freeze(), used))
            }
        }
    }
}

/// One exchange's connection, lent to its request body.
pub(super) struct Exchange<IO> {
    pub wire: Option<Wire<IO>>,
    pub reader: Reader,
}

/// The slot shared by the connection and the body.
pub(super) type Slot<IO> = Arc<Mutex<Exchange<IO>>>;

pub(super) fn lock<IO>(slot: &Mutex<Exchange<IO>>) -> MutexGuard<'_, Exchange<IO>> {
    // Poisoned only if a poll panicked; the state is still the last consistent one.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the request body needs from its slot, without the connection's I/O type.
pub(super) trait Source: Send + Sync {
    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, H1BodyError>>>;
    fn is_end_stream(&self) -> bool;
    fn size_hint(&self) -> SizeHint;
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> Source for Mutex<Exchange<IO>> {
    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, H1BodyError>>> {
        let mut ex = lock(self);
        let Exchange { wire, reader } = &mut *ex;
        if reader.done {
            return Poll::Ready(reader.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        let Some(wire) = wire.as_mut() else {
            return Poll::Ready(Some(Err(H1BodyError::Gone)));
        };
        if let Err(e) = ready!(poll_continue(reader, wire, cx)) {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            if !wire.ahead.is_empty() {
                let (data, used) = match reader.take(&wire.ahead) {
                    Ok(d) => d,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                };
                wire.consume(used);
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if reader.done {
                    return Poll::Ready(reader.trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                continue;
            }
            // Read on the stack: only what this exchange does not consume is kept.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            if let Err(e) = ready!(Pin::new(&mut wire.io).poll_read(cx, &mut buf)) {
                return Poll::Ready(Some(Err(H1BodyError::Io(e))));
            }
            let read = buf.filled();
            if read.is_empty() {
                return Poll::Ready(Some(Err(H1BodyError::Closed)));
            }
            let (data, used) = match reader.take(read) {
                Ok(d) => d,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            wire.keep(&read[used..]);
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if reader.done {
                return Poll::Ready(reader.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let ex = lock(self);
        ex.reader.done && ex.reader.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ex = lock(self);
        match ex.reader.decode {
            Decode::Length(rest) => SizeHint::with_exact(rest),
            Decode::Chunked(_) if ex.reader.done => SizeHint::with_exact(0),
            Decode::Chunked(_) => SizeHint::new(),
        }
    }
}

/// Writes the `100 Continue` owed to the client, if any: the first poll of the body is the
/// request path's sign that it wants the body.
fn poll_continue<IO: AsyncWrite + Unpin>(
    reader: &mut Reader,
    wire: &mut Wire<IO>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), H1BodyError>> {
    while let Some(at) = reader.continue_at {
        if at == CONTINUE.len() {
            ready!(Pin::new(&mut wire.io).poll_flush(cx)).map_err(H1BodyError::Io)?;
            reader.continue_at = None;
            break;
        }
        match ready!(Pin::new(&mut wire.io).poll_write(cx, &CONTINUE[at..])) {
            Ok(0) => return Poll::Ready(Err(H1BodyError::Closed)),
            Ok(n) => reader.continue_at = Some(at + n),
            Err(e) => return Poll::Ready(Err(H1BodyError::Io(e))),
        }
    }
    Poll::Ready(Ok(()))
}

/// An HTTP/1 request body with content: the connection's slot, polled for the body's bytes.
pub struct H1Body {
    pub(super) source: Arc<dyn Source>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body").finish_non_exhaustive()
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = H1BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1BodyError>>> {
        self.source.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.source.size_hint()
    }
}
