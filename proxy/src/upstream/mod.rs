//! Connections to the app: a small pool of plaintext HTTP/1.1 connections and the client codec
//! that drives them, from the request's own future and its response body's polls.
//!
//! There is no connection task and no channel: the request's future writes the request and reads
//! the response head on the leased socket itself, and the response body reads the rest when it is
//! polled. An idle connection is only its `TcpStream`; buffers exist only while a read or a write
//! is in progress (a stack buffer for each read, the encoded head while it is written), where
//! hyper's client connection kept a task, its request channel and read and write buffers per
//! connection for the connection's whole life (docs/benchmarks.md, issue 21).
//!
//! - [`pool`]: the LIFO idle list, its sweeper, [`Upstream::send`] (checkout or connect, then one
//!   exchange) and the [`Lease`] that returns a connection to the list;
//! - `codec`: request heads out, response heads in (`httparse`), the response framing rules
//!   (RFC 9112 §6.3);
//! - `chunked`: the chunked decoder of response bodies;
//! - `exchange`: one request written and its response head read, with an early response read
//!   while the body is still going out;
//! - `request`: the write side (head, small body in the same write, streamed body, trailers);
//! - [`body`]: the app's response body ([`AppBody`]);
//! - [`upgrade`]: the app side of a `101 Switching Protocols` tunnel ([`Upgraded`]).
//!
//! What hyper's client did that is kept: a request that a pooled connection never wrote (the app
//! closed it while idle) is sent again on another connection, whatever its method; connect
//! failures and timeouts are told apart from failures after sending (only the latter make a
//! retry depend on idempotency); idle connections expire within the idle timeout; an app that
//! closed an idle connection is noticed at checkout.

pub mod body;
mod codec;
mod exchange;
pub mod pool;
mod request;
pub mod upgrade;

pub use self::body::AppBody;
pub use self::pool::{Lease, Upstream};
pub use self::upgrade::Upgraded;

/// The head of a request as it goes to the app: encoded from these borrowed parts when the
/// exchange starts, so the caller keeps them for another attempt without copying them.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Request method.
    pub method: &'a http::Method,
    /// Origin-form target.
    pub uri: &'a http::Uri,
    /// Fields as they go to the app (the codec writes its own framing fields).
    pub headers: &'a http::HeaderMap,
}

impl<'a> From<&'a http::request::Parts> for RequestHead<'a> {
    fn from(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
        }
    }
}
// Trailer sections are bounded like response heads (`crate::chunked`).
pub(crate) use self::codec::{MAX_HEAD, MAX_HEADERS};

/// Why an exchange with the app failed, once a connection was there.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Reading from or writing to the app's socket failed.
    #[error("app connection I/O failed")]
    Io(#[source] std::io::Error),
    /// The app closed the connection before its response was complete.
    #[error("the app closed the connection before the response was complete")]
    Closed,
    /// The app sent a response before any of the request was written.
    #[error("the app answered before the request was sent")]
    Unsolicited,
    /// The response head did not parse.
    #[error("invalid response head from the app")]
    Head(#[source] httparse::Error),
    /// The response head was larger than the limit.
    #[error("the app's response head is too large")]
    HeadTooLarge,
    /// The response had more header fields than the limit.
    #[error("the app's response has too many header fields")]
    TooManyHeaders,
    /// The response's `Content-Length` was invalid or its values disagreed.
    #[error("invalid Content-Length in the app's response")]
    ContentLength,
    /// The response's chunked body was malformed.
    #[error("invalid chunked encoding in the app's response")]
    Chunked,
    /// The request body ended at another length than the one announced to the app.
    #[error("the request body's length differs from its Content-Length")]
    BodyLength,
    /// The request body failed (the client's read failed or it went over the body cap).
    #[error("request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a request to the app failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection to the app failed.
    #[error("connecting to the app failed")]
    Connect(#[source] std::io::Error),
    /// The TCP connection to the app did not complete within the connect timeout.
    #[error("connecting to the app timed out")]
    ConnectTimeout,
    /// A new connection failed before any byte of the request was written.
    #[error("the app closed a new connection before the request was sent")]
    Closed(#[source] AppError),
    /// The exchange failed after the request was (possibly partly) sent.
    #[error("app request failed")]
    Request(#[source] AppError),
    /// The gateway had no endpoint to send to (none ready, or every one tried).
    #[error("no endpoint available")]
    NoEndpoint,
    /// The gateway's per-attempt timeout (an HTTPRoute's `backendRequest`) expired.
    #[error("the backend did not answer within the attempt timeout")]
    AttemptTimeout,
}

impl UpstreamError {
    /// Nothing reached the app: a retry cannot duplicate work.
    pub fn is_connect(&self) -> bool {
        !matches!(self, Self::Request(_) | Self::AttemptTimeout)
    }

    /// The connect timeout (or the gateway's attempt timeout) fired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::ConnectTimeout | Self::AttemptTimeout)
    }

    /// No endpoint could be chosen (the gateway answers 503).
    pub fn is_no_endpoint(&self) -> bool {
        matches!(self, Self::NoEndpoint)
    }
}

impl From<crate::chunked::ChunkedError> for AppError {
    fn from(e: crate::chunked::ChunkedError) -> Self {
        match e {
            crate::chunked::ChunkedError::Malformed => Self::Chunked,
            crate::chunked::ChunkedError::TrailersTooLarge => Self::HeadTooLarge,
        }
    }
}
