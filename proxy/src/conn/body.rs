//! The inbound request body the request path sees, whichever protocol carried it: hyper's for
//! HTTP/2, the proxy's own codec's for HTTP/1 (see `h1`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::h1::H1Body;

/// Errors reading an inbound request body.
pub type InBodyError = Box<dyn std::error::Error + Send + Sync>;

/// An inbound request body.
#[derive(Debug)]
pub enum InBody {
    /// No body (a bodyless HTTP/1 request: nothing of the connection is involved).
    Empty,
    /// An HTTP/1 body, read from the connection as it is polled.
    H1(H1Body),
    /// An HTTP/2 stream's body.
    H2(Incoming),
}

impl From<Incoming> for InBody {
    fn from(b: Incoming) -> Self {
        Self::H2(b)
    }
}

impl Body for InBody {
    type Data = Bytes;
    type Error = InBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InBodyError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::H1(b) => b.is_end_stream(),
            Self::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::H1(b) => b.size_hint(),
            Self::H2(b) => b.size_hint(),
        }
    }
}
