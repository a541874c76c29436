//! Request heads off the wire: `httparse` within the configured limits, the request built as an
//! `http::Request`, and what the head says about the exchange (RFC 9112): how the body is framed,
//! whether the connection stays open, `Expect: 100-continue`, a protocol upgrade.

use std::mem::MaybeUninit;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::headers::FieldFacts;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes (more than zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    pub request: Request<()>,
    pub framing: Framing,
    /// The client keeps the connection open after this exchange (as far as it is concerned).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
}

/// A head the codec answers itself, without a request reaching the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// Malformed (400).
    Malformed,
    /// The request line alone exceeds the head limit (414).
    UriTooLong,
    /// The head exceeds the size or field-count limit (431).
    TooLarge,
}

impl Reject {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The `local_responses` reason, as the proxy has always counted these answers.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_request",
            Self::UriTooLong => "uri_too_long",
            Self::TooLarge => "headers_too_large",
        }
    }

    /// The whole response (the connection is closed after it).
    pub fn response(self) -> &'static [u8] {
        match self {
            Self::Malformed => {
                b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            }
            Self::UriTooLong => {
                b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            }
            Self::TooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        }
    }
}

/// Header slots parsed on the stack; a larger `--max-headers` uses a heap array per head.
const STACK_HEADERS: usize = 100;

/// Parses the head at the start of `buf`: the head and its length, `None` when it is not
/// complete yet (and still within `max_bytes`).
pub(super) fn parse(
    buf: &[u8],
    max_bytes: usize,
    max_headers: usize,
) -> Result<Option<(Head, usize)>, Reject> {
    // Uninitialised: filling the empty slots on every parse would cost more than the parse.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap = Vec::with_capacity(max_headers);
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_bytes => len,
        Ok(httparse::Status::Partial) if buf.len() < max_bytes => return Ok(None),
        Ok(httparse::Status::Complete(_) | httparse::Status::Partial) => {
            // A request line that alone goes past the limit: its target is the culprit.
            let line = memchr::memchr(b'\n', buf.trim_ascii_start());
            return Err(if line.is_some_and(|end| end < max_bytes) {
                Reject::TooLarge
            } else {
                Reject::UriTooLong
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::TooLarge),
        Err(_) => return Err(Reject::Malformed),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::Malformed);
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Reject::Malformed)?;
    let uri = Uri::try_from(target).map_err(|_| Reject::Malformed)?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // With the room the request path needs for the fields it adds: the map is not regrown per
    // request there.
    let mut headers =
        HeaderMap::with_capacity(req.headers.len() + crate::forward::FORWARD_HEADROOM);
    let mut facts = FieldFacts::default();
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Reject::Malformed)?;
        if !facts.see(&name, field.value) {
            continue;
        }
        let value = HeaderValue::from_bytes(field.value).map_err(|_| Reject::Malformed)?;
        headers.append(name, value);
    }
    let framing = framing(&facts, version)?;
    let keep_alive = if version == Version::HTTP_11 {
        !facts.close
    } else {
        facts.keep_alive && !facts.close
    };
    let expect_continue = version == Version::HTTP_11 && facts.expect_continue == Some(true);
    let upgrade = facts.wants_upgrade();
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some((
        Head {
            request,
            framing,
            keep_alive,
            expect_continue,
            upgrade,
        },
        len,
    )))
}

/// The request body's framing (RFC 9112 §6.3): a `Transfer-Encoding` must end in `chunked` and
/// comes without `Content-Length` (and not on HTTP/1.0); `Content-Length` values must agree.
fn framing(facts: &FieldFacts, version: Version) -> Result<Framing, Reject> {
    if let Some(chunked_last) = facts.chunked_last {
        if version == Version::HTTP_10 || facts.has_content_length() || !chunked_last {
            return Err(Reject::Malformed);
        }
        return Ok(Framing::Chunked);
    }
    Ok(match facts.content_length.map_err(|_| Reject::Malformed)? {
        None | Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(wire: &str) -> Result<Framing, Reject> {
        parse(wire.as_bytes(), 16 * 1024, 100).map(|h| h.map(|(h, _)| h.framing).unwrap())
    }

    #[test]
    fn request_framing_follows_rfc_9112() {
        let h = "POST / HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(framing_of(&format!("{h}\r\n")), Ok(Framing::Empty));
        assert_eq!(
            framing_of(&format!("{h}Content-Length: 5\r\n\r\n")),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_of(&format!("{h}Content-Length: 5, 5\r\n\r\n")),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_of(&format!(
                "{h}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
            )),
            Err(Reject::Malformed)
        );
        assert_eq!(
            framing_of(&format!("{h}Content-Length: +5\r\n\r\n")),
            Err(Reject::Malformed)
        );
        assert_eq!(
            framing_of(&format!("{h}Transfer-Encoding: gzip, chunked\r\n\r\n")),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_of(&format!("{h}Transfer-Encoding: chunked, gzip\r\n\r\n")),
            Err(Reject::Malformed)
        );
        assert_eq!(
            framing_of(&format!(
                "{h}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )),
            Err(Reject::Malformed)
        );
        assert_eq!(
            framing_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn heads_are_bounded() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(2000));
        assert_eq!(
            parse(long.as_bytes(), 1024, 100).unwrap_err(),
            Reject::UriTooLong
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(2000));
        assert_eq!(
            parse(big.as_bytes(), 1024, 100).unwrap_err(),
            Reject::TooLarge
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(5));
        assert_eq!(
            parse(many.as_bytes(), 1024, 4).unwrap_err(),
            Reject::TooLarge
        );
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n", 1024, 4)
                .unwrap()
                .is_none()
        );
    }
}
