//! One request and its response head on a leased connection, driven from the request's own
//! future: the request written (`request.rs`), then the response head read. Whenever the write side has to wait (the socket is full, or the client's
//! body has nothing yet) the read side is polled too, so that an app that answers before it has
//! read the whole body (a 413, say) is heard, as hyper's client does; informational heads that
//! arrive meanwhile (`100 Continue`) are skipped and the body keeps going.
//!
//! Reads go into a stack buffer and what is kept is copied out: the head's fields into the
//! response's header map, the body bytes read with it into the first frame. A heap
//! buffer exists only while a head spans several reads.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, Method, Response, StatusCode};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::body::{AppBody, Decoder};
use super::codec::{self, Head};
use super::pool::Lease;
use super::request::RequestTx;
use super::upgrade::Upgraded;
use super::{AppError, RequestHead};
use crate::body::ReqBody;

/// Bytes read from the app per read call (on the stack).
pub const READ_CHUNK: usize = 16 * 1024;

/// A request as it goes to the app, kept across a connection that failed before writing it.
pub struct Outgoing {
    method: Method,
    /// The response's fields once its head is read (allocated then, sized to the head).
    headers: HeaderMap,
    tx: RequestTx,
}

impl Outgoing {
    /// Encode `head` for `body`.
    pub fn new(head: RequestHead<'_>, body: ReqBody) -> Self {
        Self {
            method: head.method.clone(),
            headers: HeaderMap::new(),
            tx: RequestTx::new(head, body),
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
    let written = out.tx.written();
    let complete = match sent {
        Ok(Sent::Complete) => true,
        // Bytes before any of the request: not an answer to it (the connection goes, and a
        // pooled one is replaced).
        Ok(Sent::Early) if !written => {
            return Err(Failed {
                written: false,
                error: AppError::Unsolicited,
            });
        }
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
            Some(stream) => AppBody::upgraded(Upgraded::new(dec.take_ready(), stream)),
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
