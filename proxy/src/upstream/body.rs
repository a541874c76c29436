//! The app's response body: the bytes read with the head first, then reads from the leased
//! connection as the body is polled, delimited by `Content-Length`, chunked encoding (with
//! trailers) or the app's close, or no body at all. The connection goes back to the pool the
//! moment the last byte is read (before the last frame is handed on), and is closed instead if
//! the body is dropped or fails before its end, if the response said so, or if the app sent
//! more than the response.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use super::AppError;
use super::codec::{Head, RespFraming};
use super::exchange::READ_CHUNK;
use super::pool::Lease;
use super::request::RequestTx;
use super::upgrade::Upgraded;
use crate::chunked::ChunkedDecoder;

#[derive(Debug)]
enum State {
    /// Every byte of the body has been read.
    Done,
    /// This many bytes are still to come.
    Length(u64),
    /// Boxed: the decoder (and its trailers) is the uncommon case's state.
    Chunked(Box<ChunkedDecoder>),
    /// Until the app closes.
    Close,
}

/// The framing state of a response body and the bytes decoded but not yet handed on.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    ready: Option<Bytes>,
    /// The app sent bytes past the end of the response.
    extra: bool,
}

impl Decoder {
    /// The decoder for `head`'s body, fed the bytes read with the head. After a `101` those
    /// bytes belong to the new protocol and are kept as they are.
    pub fn start(head: &Head, rest: Bytes) -> Result<Self, AppError> {
        if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Self {
                state: State::Done,
                ready: (!rest.is_empty()).then_some(rest),
                extra: false,
            });
        }
        let state = match head.framing {
            RespFraming::Empty | RespFraming::Length(0) => State::Done,
            RespFraming::Length(n) => State::Length(n),
            RespFraming::Chunked => State::Chunked(Box::default()),
            RespFraming::Close => State::Close,
        };
        let mut dec = Self {
            state,
            ready: None,
            extra: false,
        };
        match &mut dec.state {
            // Shared with the head's copy rather than copied again.
            State::Length(left) if !rest.is_empty() => {
                let n = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                dec.extra = n < rest.len();
                if *left == 0 {
                    dec.state = State::Done;
                }
                dec.ready = Some(rest.slice(..n));
            }
            State::Close if !rest.is_empty() => dec.ready = Some(rest),
            _ => dec.feed(&rest)?,
        }
        Ok(dec)
    }

    /// The bytes read but not handed on.
    pub fn take_ready(&mut self) -> Bytes {
        self.ready.take().unwrap_or_default()
    }

    /// Decode bytes read from the app.
    fn feed(&mut self, input: &[u8]) -> Result<(), AppError> {
        if input.is_empty() {
            return Ok(());
        }
        let data = match &mut self.state {
            State::Done => {
                self.extra = true;
                return Ok(());
            }
            State::Length(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                self.extra |= n < input.len();
                if *left == 0 {
                    self.state = State::Done;
                }
                Bytes::copy_from_slice(&input[..n])
            }
            State::Chunked(dec) => {
                let mut data = BytesMut::new();
                let used = dec.decode(input, &mut data)?;
                self.extra |= used < input.len();
                data.freeze()
            }
            State::Close => Bytes::copy_from_slice(input),
        };
        if !data.is_empty() {
            self.ready = Some(match self.ready.take() {
                None => data,
                Some(before) => {
                    let mut joined = BytesMut::with_capacity(before.len() + data.len());
                    joined.extend_from_slice(&before);
                    joined.extend_from_slice(&data);
                    joined.freeze()
                }
            });
        }
        Ok(())
    }

    /// The app closed the connection: the end of a close-delimited body, else an error.
    fn eof(&mut self) -> Result<(), AppError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(_) | State::Chunked(_) => Err(AppError::Closed),
        }
    }

    /// Trailers waiting to be handed on (a chunked body that ended with some).
    fn take_trailers(&mut self) -> Option<HeaderMap> {
        match &mut self.state {
            State::Chunked(dec) if dec.is_done() => dec.take_trailers(),
            _ => None,
        }
    }

    /// Every byte has been read and the trailers, if any, are waiting.
    fn read_all(&self) -> bool {
        match &self.state {
            State::Done => true,
            State::Chunked(dec) => dec.is_done(),
            _ => false,
        }
    }
}

/// The app's response body (see the module doc).
#[derive(Debug)]
pub struct AppBody {
    /// The connection, while bytes of the body are still to be read.
    lease: Option<Lease>,
    dec: Decoder,
    /// The connection may serve another request once the body is read.
    reusable: bool,
    /// The response said the connection stays open (it may, once the request is sent too).
    keep_alive: bool,
    /// What is left of the request when the app answered before it was sent: written as the
    /// body is polled, as hyper's connection task went on writing it.
    sending: Option<Box<RequestTx>>,
    /// The app switched protocols: its connection, for the tunnel.
    upgrade: Option<Box<Upgraded>>,
}

impl AppBody {
    /// A body read from `lease` by `dec`; the connection goes back to the pool at the end when
    /// `keep_alive` and the request was sent whole (`sending` is what is left of it).
    pub(super) fn new(
        lease: Lease,
        dec: Decoder,
        keep_alive: bool,
        sending: Option<Box<RequestTx>>,
    ) -> Self {
        let mut body = Self {
            lease: Some(lease),
            dec,
            reusable: keep_alive && sending.is_none(),
            keep_alive,
            sending,
            upgrade: None,
        };
        if body.dec.read_all() {
            body.release();
        }
        body
    }

    /// No body.
    pub fn empty() -> Self {
        Self {
            lease: None,
            dec: Decoder {
                state: State::Done,
                ready: None,
                extra: false,
            },
            reusable: false,
            keep_alive: false,
            sending: None,
            upgrade: None,
        }
    }

    /// The body of a `101`: none, and the connection for the tunnel.
    pub(super) fn upgraded(up: Upgraded) -> Self {
        let mut body = Self::empty();
        body.upgrade = Some(Box::new(up));
        body
    }

    /// The app's side of the tunnel, after a `101 Switching Protocols`.
    pub fn take_upgrade(&mut self) -> Option<Upgraded> {
        self.upgrade.take().map(|b| *b)
    }

    /// The body is read: the connection goes back to the pool, or is closed (and the rest of
    /// an unsent request dropped).
    fn release(&mut self) {
        self.sending = None;
        if let Some(lease) = self.lease.take()
            && (!self.reusable || self.dec.extra)
        {
            lease.discard();
        }
    }

    fn fail(&mut self, e: AppError) -> Poll<Option<Result<Frame<Bytes>, AppError>>> {
        if let Some(lease) = self.lease.take() {
            lease.discard();
        }
        self.sending = None;
        self.dec.state = State::Done;
        self.dec.ready = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Drop for AppBody {
    fn drop(&mut self) {
        // Dropped before its end (client gone, a retried error response): the app may still be
        // sending, so the connection's state is unknown.
        if let Some(lease) = self.lease.take() {
            lease.discard();
        }
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = AppError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AppError>>> {
        let this = self.get_mut();
        loop {
            if let Some(data) = this.dec.ready.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(trailers) = this.dec.take_trailers() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if this.dec.read_all() {
                this.dec.state = State::Done;
                this.release();
                return Poll::Ready(None);
            }
            let Some(stream) = this.lease.as_mut().and_then(Lease::stream) else {
                return this.fail(AppError::Closed);
            };
            if let Some(tx) = this.sending.as_mut() {
                match tx.poll_send(cx, stream) {
                    Poll::Ready(Ok(())) => {
                        this.sending = None;
                        this.reusable = this.keep_alive;
                    }
                    // The client's body failed: the exchange cannot end well.
                    Poll::Ready(Err(e @ AppError::Body(_))) => return this.fail(e),
                    // The app stopped reading; its response may still be whole.
                    Poll::Ready(Err(_)) => this.sending = None,
                    Poll::Pending => {}
                }
            }
            let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut stack);
            match Pin::new(stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(AppError::Io(e)),
                Poll::Ready(Ok(())) => {}
            }
            let got = buf.filled();
            let fed = if got.is_empty() {
                // Read to its close: never reusable.
                this.reusable = false;
                this.dec.eof()
            } else {
                this.dec.feed(got)
            };
            if let Err(e) = fed {
                return this.fail(e);
            }
            if this.dec.read_all() {
                // Back to the pool before the last frame goes on, so that the client's next
                // request finds it there.
                this.release();
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.dec.ready.is_none()
            && match &self.dec.state {
                State::Done => true,
                State::Chunked(dec) => dec.is_done() && !dec.has_trailers(),
                _ => false,
            }
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.dec.ready.as_ref().map_or(0, |b| b.len() as u64);
        match &self.dec.state {
            State::Done => SizeHint::with_exact(ready),
            State::Length(left) => SizeHint::with_exact(ready + left),
            State::Chunked(_) | State::Close => {
                let mut hint = SizeHint::new();
                hint.set_lower(ready);
                hint
            }
        }
    }
}
