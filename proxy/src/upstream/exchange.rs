//! One request and its response head on a leased connection, driven from the request's own
//! future: the head (with a small body, one write), then a streamed body frame by frame, then
//! the response head. Whenever the write side has to wait (the socket is full, or the client's
//! body has nothing yet) the read side is polled too, so that an app that answers before it has
//! read the whole body (a 413, say) is heard, as hyper's client does; informational heads that
//! arrive meanwhile (`100 Continue`) are skipped and the body keeps going.
//!
//! Reads go into a stack buffer and what is kept is copied out: the head's fields into the
//! request's own header map (cleared), the body bytes read with it into the first frame. A heap
//! buffer exists only while a head spans several reads.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::AppError;
use super::body::{AppBody, Decoder};
use super::codec::{self, Head, ReqFraming};
use super::pool::Lease;
use super::upgrade::Upgraded;
use crate::body::ReqBody;
use crate::coalesce::COALESCE_MAX;

/// Bytes read from the app per read call (on the stack).
pub const READ_CHUNK: usize = 16 * 1024;

/// A request as it goes to the app, kept across a connection that failed before writing it.
pub struct Outgoing {
    method: Method,
    /// The request's fields; the response's once its head is read (the map is reused).
    headers: HeaderMap,
    tx: RequestTx,
}

impl Outgoing {
    /// Encode `req`'s head.
    pub fn new(req: Request<ReqBody>) -> Self {
        let (parts, body) = req.into_parts();
        let (framing, mut full, body) = match body.into_full() {
            Ok(None) => (ReqFraming::Empty, None, None),
            Ok(Some(b)) => (ReqFraming::Length(b.len() as u64), Some(b), None),
            Err(body) => match body.size_hint().exact() {
                Some(n) => (ReqFraming::Length(n), None, Some(body)),
                None => (ReqFraming::Chunked, None, Some(body)),
            },
        };
        let mut wire = Vec::new();
        codec::encode_head(
            &mut wire,
            &parts.method,
            &parts.uri,
            &parts.headers,
            framing,
        );
        if let Some(b) = full.take_if(|b| b.len() <= COALESCE_MAX) {
            wire.extend_from_slice(&b);
        }
        Self {
            method: parts.method,
            headers: parts.headers,
            tx: RequestTx {
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
            },
        }
    }
}

/// An exchange that failed, and whether any byte of the request reached the socket.
#[derive(Debug)]
pub struct Failed {
    /// Some of the request was written (it cannot be sent again on another connection).
    pub written: bool,
    /// What failed.
    pub error: AppError,
}

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

/// How the write side ended.
enum Sent {
    /// The whole request went out.
    Complete,
    /// A final response head arrived first (it is in the read buffer).
    Early,
}

/// A lease in the middle of an exchange: dropped there (the request was cancelled, or timed
/// out), its connection is in an unknown state and is closed rather than pooled.
struct InFlight(Option<Lease>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(lease) = self.0.take() {
            lease.discard();
        }
    }
}

/// Send `out` on `lease`'s connection and read the response head.
pub async fn run(lease: Lease, out: &mut Outgoing) -> Result<Response<AppBody>, Failed> {
    let mut held = InFlight(Some(lease));
    let result = exchange(&mut held, out).await;
    let lease = held.0.take();
    match (result, lease) {
        (Ok((head, dec, rest)), Some(lease)) => Ok(respond(lease, head, dec, out, rest)),
        (Err(failed), lease) => {
            if let Some(lease) = lease {
                lease.discard();
            }
            Err(failed)
        }
        (Ok(_), None) => Err(Failed {
            written: true,
            error: AppError::Closed,
        }),
    }
}

/// A parsed response head, its body's decoder, and what is left of the request.
type Answer = (Head, Decoder, Option<Box<RequestTx>>);

/// Write the request and read the response head on `held`'s connection.
async fn exchange(held: &mut InFlight, out: &mut Outgoing) -> Result<Answer, Failed> {
    // Response bytes read while the request was still going out (rare).
    let mut early: Option<BytesMut> = None;
    let Some(stream) = held.0.as_mut().and_then(Lease::stream) else {
        return Err(Failed {
            written: false,
            error: AppError::Closed,
        });
    };
    let sent = std::future::poll_fn(|cx| write_request(cx, stream, out, &mut early)).await;
    let written = out.tx.written;
    let complete = match sent {
        Ok(Sent::Complete) => true,
        Ok(Sent::Early) => false,
        // The client's body failed: final, whatever reached the app.
        Err(error @ AppError::Body(_)) => {
            return Err(Failed {
                written: true,
                error,
            });
        }
        Err(error) if !written => {
            return Err(Failed {
                written: false,
                error,
            });
        }
        // The app may have answered before it stopped reading (a 413, then a close): hear it
        // out if it did, else report the write's failure.
        Err(error) => {
            let mut probe = early.take();
            let method = &out.method;
            let headers = &mut out.headers;
            return match std::future::poll_fn(|cx| {
                read_head(cx, stream, &mut probe, headers, method)
            })
            .await
            {
                Ok((head, dec)) => Ok((head, dec, None)),
                Err(_) => Err(Failed {
                    written: true,
                    error,
                }),
            };
        }
    };
    let method = &out.method;
    let headers = &mut out.headers;
    match std::future::poll_fn(|cx| read_head(cx, stream, &mut early, headers, method)).await {
        Ok((head, dec)) => {
            // An early answer leaves the rest of the request to its response body.
            let rest = (!complete).then(|| Box::new(out.tx.take()));
            Ok((head, dec, rest))
        }
        Err(error) => Err(Failed {
            written: true,
            error,
        }),
    }
}

/// The response for a parsed head: the body reads the rest from the lease, or the lease goes
/// back to the pool at once when the whole response has been read. `rest`: what is left of the
/// request, for the body to send on.
fn respond(
    lease: Lease,
    head: Head,
    mut dec: Decoder,
    out: &mut Outgoing,
    rest: Option<Box<RequestTx>>,
) -> Response<AppBody> {
    let status = head.status;
    let body = if status == StatusCode::SWITCHING_PROTOCOLS {
        match lease.into_stream() {
            Some(stream) => AppBody::upgraded(Upgraded::new(stream, dec.take_ready())),
            None => AppBody::empty(),
        }
    } else {
        AppBody::new(lease, dec, head.keep_alive, rest)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = head.version;
    *resp.headers_mut() = std::mem::take(&mut out.headers);
    resp
}

/// Write what is left of the request, and listen for an early response whenever the write side
/// waits. Returns `Pending` only with every side that can make progress registered: the
/// socket's write side or the body, and the socket's read side.
fn write_request(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    out: &mut Outgoing,
    early: &mut Option<BytesMut>,
) -> Poll<Result<Sent, AppError>> {
    loop {
        match out.tx.poll_send(cx, stream) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ok(Sent::Complete)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => match poll_early(cx, stream, out, early) {
                Poll::Ready(Ok(true)) => return Poll::Ready(Ok(Sent::Early)),
                // An informational head was skipped, or only part of a head came: go on.
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            },
        }
    }
}

impl RequestTx {
    /// Move the state out (the response body carries it on), leaving a finished one.
    fn take(&mut self) -> Self {
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
                        ReqFraming::Chunked => Ok(Piece::Last(codec::encode_last_chunk(None))),
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
                        return Poll::Ready(Ok(Piece::Last(codec::encode_last_chunk(
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
                codec::chunk_line(data.len(), &mut line) as u8
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

/// Read what the app sent while the request is still going out. `Ready(true)`: a final
/// response head is complete in `early`; `Ready(false)`: go on writing.
fn poll_early(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    out: &mut Outgoing,
    early: &mut Option<BytesMut>,
) -> Poll<Result<bool, AppError>> {
    let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut stack);
    match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(e)) => return Poll::Ready(Err(AppError::Io(e))),
        Poll::Ready(Ok(())) => {}
    }
    if buf.filled().is_empty() {
        return Poll::Ready(Err(AppError::Closed));
    }
    let acc = early.get_or_insert_with(BytesMut::new);
    acc.extend_from_slice(buf.filled());
    loop {
        // A copy to parse from: this path is rare.
        let snapshot = Bytes::copy_from_slice(acc);
        match codec::parse_head(&snapshot, &mut out.headers, &out.method)? {
            None => return Poll::Ready(Ok(false)),
            Some(head) if is_interim(head.status) => acc.advance(head.len),
            Some(_) => return Poll::Ready(Ok(true)),
        }
    }
}

/// An informational status that another head follows (`101` ends the exchange instead).
fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// Read the response head (after any informational ones). `acc` holds what was read before, if
/// anything; a heap buffer is taken only when a head spans reads.
fn read_head(
    cx: &mut Context<'_>,
    stream: &mut TcpStream,
    acc: &mut Option<BytesMut>,
    headers: &mut HeaderMap,
    method: &Method,
) -> Poll<Result<(Head, Decoder), AppError>> {
    loop {
        if let Some(buf) = acc.as_mut().filter(|b| !b.is_empty()) {
            // A head that took several reads (rare): parsed from a copy of what is there.
            let all = Bytes::copy_from_slice(buf);
            match codec::parse_head(&all, headers, method)? {
                Some(head) if is_interim(head.status) => {
                    buf.advance(head.len);
                    continue;
                }
                Some(head) => {
                    let dec = Decoder::start(&head, all.slice(head.len..))?;
                    *acc = None;
                    return Poll::Ready(Ok((head, dec)));
                }
                None => {}
            }
        }
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut rb = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(AppError::Io(e))),
            Poll::Ready(Ok(())) => {}
        }
        let got = rb.filled();
        if got.is_empty() {
            return Poll::Ready(Err(AppError::Closed));
        }
        if let Some(buf) = acc.as_mut().filter(|b| !b.is_empty()) {
            buf.extend_from_slice(got);
            continue;
        }
        // The common case: the whole head (and often the body) in one read, copied once; the
        // header values and the first body frame share the copy.
        let all = Bytes::copy_from_slice(got);
        match codec::parse_head(&all, headers, method)? {
            Some(head) if !is_interim(head.status) => {
                let dec = Decoder::start(&head, all.slice(head.len..))?;
                *acc = None;
                return Poll::Ready(Ok((head, dec)));
            }
            Some(head) => *acc = Some(BytesMut::from(&all[head.len..])),
            None => {
                let mut buf = BytesMut::with_capacity(got.len().max(8 * 1024));
                buf.extend_from_slice(got);
                *acc = Some(buf);
            }
        }
    }
}
