//! Request and response bodies as they pass through the proxy.
//!
//! [`ReqBody`] streams the client's body to the app (counting bytes and enforcing the body cap),
//! or replays a small fully-buffered body on retries. [`prepare`] decides which, reading at most
//! the replay cap. [`RespBody`] streams the app's body to the client and carries the request's
//! [`Completion`], which records metrics, the access log and the span when the body ends or is
//! dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use crate::conn::{InBody, InBodyError};
use crate::telemetry::Completion;
use crate::upstream::{AppBody, AppError};

/// Errors a proxied request body can produce.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body exceeded `--max-body-bytes`.
    #[error("request body exceeds the configured cap")]
    TooLarge,
    /// Reading from the client failed.
    #[error("reading request body: {0}")]
    Read(#[source] InBodyError),
}

/// Size accounting shared by both body shapes.
#[derive(Debug)]
struct Accounting {
    counter: Counter,
    tap: Option<Arc<AtomicU64>>,
    limit: Option<u64>,
    seen: u64,
}

impl Accounting {
    fn add(&mut self, n: usize) -> Result<(), BodyError> {
        self.seen += n as u64;
        self.counter.inc_by(n as u64);
        if let Some(tap) = &self.tap {
            tap.fetch_add(n as u64, Ordering::Relaxed);
        }
        match self.limit {
            Some(limit) if self.seen > limit => Err(BodyError::TooLarge),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
enum ReqKind {
    /// Fully buffered (replayable); `None` = empty.
    Full(Option<Bytes>),
    /// Boxed: the bodyless common case keeps every request's future small.
    Stream(Box<Streaming>),
}

/// A body streamed from the client, after an optional already-read prefix.
#[derive(Debug)]
struct Streaming {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    inner: Option<InBody>,
    acct: Accounting,
}

/// Body sent to the app.
#[derive(Debug)]
pub struct ReqBody {
    kind: ReqKind,
}

impl ReqBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: ReqKind::Full(None),
        }
    }

    /// A complete (replayable) body.
    pub fn full(b: Bytes) -> Self {
        Self {
            kind: ReqKind::Full(Some(b)),
        }
    }

    /// The whole body when it is in hand (`Ok(None)`: empty), else the streaming body back.
    pub fn into_full(self) -> Result<Option<Bytes>, Self> {
        match self.kind {
            ReqKind::Full(b) => Ok(b),
            ReqKind::Stream(_) => Err(self),
        }
    }

    /// Another copy of a replayable body, or `None` when it is streaming.
    pub fn replay(&self) -> Option<Self> {
        match &self.kind {
            ReqKind::Full(b) => Some(Self {
                kind: ReqKind::Full(b.clone()),
            }),
            ReqKind::Stream(_) => None,
        }
    }
}

/// Turn the client's body into a [`ReqBody`]. With `replay_cap = Some(n)` (the request may be
/// retried) bodies of at most `n` bytes are read fully so they can be replayed; the boolean says
/// whether that worked. Bytes are counted into `counter` and checked against `limit`.
pub async fn prepare(
    mut body: InBody,
    replay_cap: Option<usize>,
    limit: Option<u64>,
    counter: Counter,
    tap: Option<Arc<AtomicU64>>,
) -> Result<(ReqBody, bool), BodyError> {
    let mut acct = Accounting {
        counter,
        tap,
        limit,
        seen: 0,
    };
    if body.is_end_stream() {
        return Ok((ReqBody::empty(), true));
    }
    let stream = |prefix, trailers, inner, acct| ReqBody {
        kind: ReqKind::Stream(Box::new(Streaming {
            prefix,
            trailers,
            inner,
            acct,
        })),
    };
    let Some(cap) = replay_cap else {
        return Ok((stream(None, None, Some(body), acct), false));
    };
    if body.size_hint().lower() > cap as u64 {
        return Ok((stream(None, None, Some(body), acct), false));
    }
    let mut buf = BytesMut::new();
    loop {
        let Some(frame) = http_body_util::BodyExt::frame(&mut body).await else {
            return Ok((
                ReqBody {
                    kind: ReqKind::Full(Some(buf.freeze())),
                },
                true,
            ));
        };
        let frame = frame.map_err(BodyError::Read)?;
        match frame.into_data() {
            Ok(data) => {
                acct.add(data.len())?;
                buf.extend_from_slice(&data);
                if buf.len() > cap {
                    return Ok((stream(Some(buf.freeze()), None, Some(body), acct), false));
                }
            }
            Err(frame) => {
                // Trailers end the body; keep it as a (non-replayable) stream to forward them.
                let trailers = frame.into_trailers().ok();
                return Ok((stream(Some(buf.freeze()), trailers, None, acct), false));
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            ReqKind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqKind::Stream(s) => {
                if let Some(p) = s.prefix.take().filter(|p| !p.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                if let Some(inner_body) = s.inner.as_mut() {
                    match Pin::new(inner_body).poll_frame(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref()
                                && let Err(e) = s.acct.add(data.len())
                            {
                                s.inner = None;
                                return Poll::Ready(Some(Err(e)));
                            }
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        Poll::Ready(Some(Err(e))) => {
                            s.inner = None;
                            return Poll::Ready(Some(Err(BodyError::Read(e))));
                        }
                        Poll::Ready(None) => s.inner = None,
                    }
                }
                Poll::Ready(s.trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ReqKind::Full(b) => b.is_none(),
            ReqKind::Stream(s) => {
                s.prefix.as_ref().is_none_or(Bytes::is_empty)
                    && s.trailers.is_none()
                    && s.inner.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ReqKind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqKind::Stream(s) => {
                let p = s.prefix.as_ref().map_or(0, |b| b.len() as u64);
                match &s.inner {
                    Some(i) => {
                        let h = i.size_hint();
                        let mut out = SizeHint::new();
                        out.set_lower(h.lower() + p);
                        if let Some(u) = h.upper() {
                            out.set_upper(u + p);
                        }
                        out
                    }
                    None if s.trailers.is_none() => SizeHint::with_exact(p),
                    None => {
                        let mut out = SizeHint::new();
                        out.set_lower(p);
                        out
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
enum RespKind {
    Full(Option<Bytes>),
    /// The app's body; it holds the app connection and returns it to the pool at its end.
    Stream(AppBody),
}

/// Body sent to the client.
#[derive(Debug)]
pub struct RespBody {
    kind: RespKind,
    done: Option<Completion>,
}

impl RespBody {
    /// A small proxy-generated body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b: Bytes = b.into();
        Self {
            kind: RespKind::Full((!b.is_empty()).then_some(b)),
            done: None,
        }
    }

    /// The app's body, streamed from its connection.
    pub fn stream(b: AppBody) -> Self {
        Self {
            kind: RespKind::Stream(b),
            done: None,
        }
    }

    /// Attach the completion that fires when this body ends or is dropped (in place: a
    /// response moved out and back for it is a few hundred bytes copied twice per request).
    pub fn set_completion(&mut self, done: Completion) {
        self.done = Some(done);
    }

    fn count(&mut self, n: usize) {
        if let Some(done) = self.done.as_mut() {
            done.add_bytes_out(n);
        }
    }

    fn finish(&mut self) {
        // The app's body returned its connection when it read the last byte, before this.
        // Dropping the completion records it.
        self.done.take();
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = AppError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AppError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            RespKind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespKind::Stream(inner) => Pin::new(inner).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.count(d.len());
                }
                if this.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(done) = this.done.as_mut() {
                    done.mark_error();
                }
                this.finish();
            }
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RespKind::Full(b) => b.is_none(),
            RespKind::Stream(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RespKind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespKind::Stream(inner) => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_body_stays_small() {
        // It is in every request's future (see `ReqKind::Stream`).
        assert!(std::mem::size_of::<ReqBody>() <= 40);
    }
}
