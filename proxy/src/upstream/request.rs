//! The write side of an exchange: a request's head encoded once (with a small complete body, or
//! the streamed body's first frame when it is already there, behind it in the same write), then
//! a streamed body frame by frame (chunked unless its length is known), then the last chunk and
//! the trailers. It stops whenever the socket or the body has to wait; the exchange, or the
//! response body after an early answer, polls it again.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body as _;
use smallvec::SmallVec;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::codec::{self, ReqFraming};
use super::{AppError, RequestHead};
use crate::body::ReqBody;
use crate::coalesce::COALESCE_MAX;

/// What is being written.
enum Piece {
    /// The head (with a small complete body or the streamed body's first frame), then a large
    /// complete body.
    Head,
    /// A data frame of the streamed body, with its chunk line and CRLF when chunked.
    Chunk {
        line: [u8; 20],
        line_len: u8,
        data: Bytes,
        crlf: bool,
    },
    /// The next frame of the streamed body.
    NextFrame,
    /// The last chunk and the trailers.
    Last(Vec<u8>),
    Done,
}

/// The write side of an exchange: what is left of the request, and how far it got. When the
/// app answers before the body is sent, the response body carries it on (see [`AppBody`]).
pub struct RequestTx {
    /// The encoded head, with the body behind it when that is small and in hand.
    wire: Vec<u8>,
    /// A complete body too large to copy behind the head.
    full: Option<Bytes>,
    /// A streamed body, written after the head.
    body: Option<ReqBody>,
    framing: ReqFraming,
    /// The streamed body's first frame was asked for before the head went out.
    first_polled: bool,
    /// That frame, when too large to copy behind the head: written next.
    queued: Option<Piece>,
    piece: Piece,
    /// Bytes of the current piece written.
    sent: usize,
    /// Bytes of the streamed body seen, checked against its `Content-Length`.
    body_bytes: u64,
    /// Any byte reached the socket.
    written: bool,
}

impl std::fmt::Debug for RequestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTx")
            .field("framing", &self.framing)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl RequestTx {
    /// Frame `body` and encode `head` for it.
    pub fn new(head: RequestHead<'_>, body: ReqBody) -> Self {
        let (framing, mut full, body) = match body.into_full() {
            Ok(None) => (ReqFraming::Empty, None, None),
            Ok(Some(b)) => (ReqFraming::Length(b.len() as u64), Some(b), None),
            Err(body) => match body.size_hint().exact() {
                Some(n) => (ReqFraming::Length(n), None, Some(body)),
                None => (ReqFraming::Chunked, None, Some(body)),
            },
        };
        let mut wire = Vec::new();
        codec::encode_head(&mut wire, head.method, head.uri, head.headers, framing);
        if let Some(b) = full.take_if(|b| b.len() <= COALESCE_MAX) {
            wire.extend_from_slice(&b);
        }
        Self {
            wire,
            full,
            body,
            framing,
            first_polled: false,
            queued: None,
            piece: Piece::Head,
            sent: 0,
            body_bytes: 0,
            written: false,
        }
    }

    /// Some of the request reached the socket.
    pub fn written(&self) -> bool {
        self.written
    }
    /// Move the state out (the response body carries it on), leaving a finished one.
    pub fn take(&mut self) -> Self {
        std::mem::replace(
            self,
            Self {
                wire: Vec::new(),
                full: None,
                body: None,
                framing: ReqFraming::Empty,
                first_polled: true,
                queued: None,
                piece: Piece::Done,
                sent: 0,
                body_bytes: 0,
                written: self.written,
            },
        )
    }

    /// Write until the request is complete (`Ready(Ok)`) or the socket or the body has to wait.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
    ) -> Poll<Result<(), AppError>> {
        if !self.first_polled {
            self.first_polled = true;
            // The first frame goes out with the head when it is there already; a body that fails
            // at once then fails before the app hears of the request.
            if self.body.is_some() {
                match self.next_piece(cx) {
                    Poll::Ready(Ok(piece)) => self.behind_head(piece),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
        }
        loop {
            let step = match &mut self.piece {
                Piece::Head => {
                    let full = self.full.as_deref().unwrap_or_default();
                    write_parts(cx, stream, [&self.wire, full, &[]], self.sent)
                }
                Piece::Chunk {
                    line,
                    line_len,
                    data,
                    crlf,
                } => {
                    let tail: &[u8] = if *crlf { b"\r\n" } else { b"" };
                    let line = &line[..usize::from(*line_len)];
                    write_parts(cx, stream, [line, data, tail], self.sent)
                }
                Piece::Last(last) => write_parts(cx, stream, [last, &[], &[]], self.sent),
                Piece::NextFrame => match self.next_piece(cx) {
                    Poll::Ready(Ok(piece)) => {
                        self.piece = piece;
                        self.sent = 0;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                },
                Piece::Done => return Poll::Ready(Ok(())),
            };
            let n = match step {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(AppError::Io(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.written = true;
            self.sent += n;
            if self.sent == self.piece_len() {
                self.piece = match self.piece {
                    Piece::Head => {
                        // Written: the encoded head is not needed again.
                        self.wire = Vec::new();
                        self.full = None;
                        if let Some(first) = self.queued.take() {
                            first
                        } else if self.body.is_some() {
                            Piece::NextFrame
                        } else {
                            Piece::Done
                        }
                    }
                    Piece::Chunk { .. } => Piece::NextFrame,
                    _ => Piece::Done,
                };
                self.sent = 0;
            }
        }
    }

    /// A piece got before the head was written: copied behind the head when small, else
    /// queued to follow it.
    fn behind_head(&mut self, piece: Piece) {
        let len = match &piece {
            Piece::Chunk { data, .. } => data.len(),
            Piece::Last(last) => last.len(),
            Piece::Head | Piece::NextFrame | Piece::Done => 0,
        };
        if len > COALESCE_MAX {
            self.queued = Some(piece);
            return;
        }
        match piece {
            Piece::Chunk {
                line,
                line_len,
                data,
                crlf,
            } => {
                self.wire.extend_from_slice(&line[..usize::from(line_len)]);
                self.wire.extend_from_slice(&data);
                if crlf {
                    self.wire.extend_from_slice(b"\r\n");
                }
            }
            Piece::Last(last) => self.wire.extend_from_slice(&last),
            Piece::Head | Piece::NextFrame | Piece::Done => {}
        }
    }

    /// Bytes in the piece being written.
    fn piece_len(&self) -> usize {
        match &self.piece {
            Piece::Head => self.wire.len() + self.full.as_ref().map_or(0, Bytes::len),
            Piece::Chunk {
                line_len,
                data,
                crlf,
                ..
            } => usize::from(*line_len) + data.len() + if *crlf { 2 } else { 0 },
            Piece::Last(last) => last.len(),
            Piece::NextFrame | Piece::Done => 0,
        }
    }

    /// The next piece from the streamed body. `Pending` when the body has nothing yet.
    fn next_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Piece, AppError>> {
        let chunked = self.framing == ReqFraming::Chunked;
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Ok(Piece::Done));
        };
        loop {
            let frame = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.body = None;
                    return Poll::Ready(match self.framing {
                        ReqFraming::Chunked => {
                            Ok(Piece::Last(crate::chunked::encode_last_chunk(None)))
                        }
                        ReqFraming::Length(n) if n != self.body_bytes => Err(AppError::BodyLength),
                        _ => Ok(Piece::Done),
                    });
                }
                Poll::Ready(Some(Err(e))) => {
                    self.body = None;
                    return Poll::Ready(Err(AppError::Body(Box::new(e))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers end the body; only chunked framing can carry them.
                    if chunked {
                        self.body = None;
                        let trailers = frame.into_trailers().ok();
                        return Poll::Ready(Ok(Piece::Last(crate::chunked::encode_last_chunk(
                            trailers.as_ref(),
                        ))));
                    }
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            self.body_bytes += data.len() as u64;
            if let ReqFraming::Length(n) = self.framing
                && self.body_bytes > n
            {
                return Poll::Ready(Err(AppError::BodyLength));
            }
            let mut line = [0u8; 20];
            let line_len = if chunked {
                crate::chunked::chunk_line(data.len(), &mut line) as u8
            } else {
                0
            };
            return Poll::Ready(Ok(Piece::Chunk {
                line,
                line_len,
                data,
                crlf: chunked,
            }));
        }
    }
}

/// One write of `parts` from offset `sent`: a plain `send` when what is left is one slice or
/// small (copied together on the stack), `writev` only for large multi-slice writes (see
/// `coalesce.rs` for why).
fn write_parts(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    parts: [&[u8]; 3],
    sent: usize,
) -> Poll<Result<usize, AppError>> {
    let mut slices: SmallVec<[IoSlice<'_>; 3]> = SmallVec::new();
    let mut skip = sent;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        slices.push(IoSlice::new(&p[skip..]));
        skip = 0;
    }
    let left: usize = slices.iter().map(|s| s.len()).sum();
    let polled = match slices.as_slice() {
        [] => return Poll::Ready(Ok(0)),
        [one] => Pin::new(stream).poll_write(cx, one),
        _ if left <= COALESCE_MAX => {
            // Uninitialised stack space: zeroing it would cost more than the copy.
            let mut joined: SmallVec<[u8; COALESCE_MAX]> = SmallVec::new();
            for s in &slices {
                joined.extend_from_slice(s);
            }
            Pin::new(stream).poll_write(cx, &joined)
        }
        _ => Pin::new(stream).poll_write_vectored(cx, &slices),
    };
    polled.map_err(AppError::Io)
}
