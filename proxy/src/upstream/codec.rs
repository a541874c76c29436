//! The HTTP/1.1 wire format towards the app: request heads (and the chunked coding's lines)
//! encoded, response heads parsed with `httparse` into a header map, and the response framing
//! decided by RFC 9112 §6.3 (the chunked coding is the crate's `chunked.rs`).

use std::io::Write as _;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use super::AppError;
use crate::headers::FieldFacts;

/// The largest response head accepted (hyper's default read buffer limit).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most response header fields accepted (hyper's default).
pub const MAX_HEADERS: usize = 100;

/// How a request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Append the request head to `out`. The framing headers are this codec's: a client's
/// `Content-Length` or `Transfer-Encoding` is replaced by the one that describes the body sent.
pub fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: ReqFraming,
) {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let fields: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    out.reserve(method.as_str().len() + target.len() + fields + 64);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        let framing_field = name == header::TRANSFER_ENCODING
            || (name == header::CONTENT_LENGTH && framing != ReqFraming::Empty);
        if framing_field {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        // An empty body keeps what the client said (`Content-Length: 0` on a POST, or nothing).
        ReqFraming::Empty => {}
        ReqFraming::Length(n) => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "content-length: {n}\r\n");
        }
        ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespFraming {
    /// No body whatever the headers say (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the app closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Bytes of the head, up to and including its empty line.
    pub len: usize,
    /// Status code.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// How the body is delimited.
    pub framing: RespFraming,
    /// The connection may take another request after this response.
    pub keep_alive: bool,
}

/// Parse a response head from the start of `buf` into `headers` (cleared first: an informational
/// head may have been parsed into it). The values share `buf` (one allocation for the head, not
/// one per value), and the map grows once, to the head's field count.
/// `Ok(None)`: incomplete, read more.
pub fn parse_head(
    buf: &Bytes,
    headers: &mut HeaderMap,
    method: &Method,
) -> Result<Option<Head>, AppError> {
    // Uninitialised: filling 100 empty fields per response would cost more than parsing one.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(AppError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(AppError::TooManyHeaders),
        Err(e) => return Err(AppError::Head(e)),
    };
    if len > MAX_HEAD {
        return Err(AppError::HeadTooLarge);
    }
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(AppError::Head(httparse::Error::Status))?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    headers.clear();
    headers.reserve(resp.headers.len());
    let mut facts = FieldFacts::default();
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| AppError::Head(httparse::Error::HeaderName))?;
        if !facts.see(&name, h.value) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(buf.slice_ref(h.value))
            .map_err(|_| AppError::Head(httparse::Error::HeaderValue))?;
        headers.append(name, value);
    }
    let (framing, keep_alive) = framing(method, status, version, &facts, headers)?;
    Ok(Some(Head {
        len,
        status,
        version,
        framing,
        keep_alive,
    }))
}

/// The body framing and whether the connection stays open (RFC 9112 §6.3 and §9.3), from the
/// head's `facts`. A response with both `Transfer-Encoding` and `Content-Length` loses the latter
/// (the client's framing is the body's) and closes the connection afterwards, as the RFC asks.
fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    facts: &FieldFacts,
    headers: &mut HeaderMap,
) -> Result<(RespFraming, bool), AppError> {
    let mut keep_alive = if version == Version::HTTP_11 {
        !facts.close
    } else {
        facts.keep_alive
    };
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((RespFraming::Empty, keep_alive));
    }
    if let Some(chunked_last) = facts.chunked_last {
        if facts.has_content_length() {
            headers.remove(header::CONTENT_LENGTH);
            keep_alive = false;
        }
        // Chunked must be the last coding; anything else is read until the app closes.
        if chunked_last {
            return Ok((RespFraming::Chunked, keep_alive));
        }
        return Ok((RespFraming::Close, false));
    }
    match facts.content_length.map_err(|_| AppError::ContentLength)? {
        Some(n) => Ok((RespFraming::Length(n), keep_alive)),
        None => Ok((RespFraming::Close, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &Method, uri: &str, fields: &[(&str, &str)], framing: ReqFraming) -> String {
        let mut headers = HeaderMap::new();
        for (n, v) in fields {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut out = Vec::new();
        encode_head(&mut out, method, &uri.parse().unwrap(), &headers, framing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_heads_are_encoded_with_the_codecs_framing() {
        assert_eq!(
            head(
                &Method::GET,
                "/a?b=1",
                &[("host", "app"), ("x-many", "1"), ("x-many", "2")],
                ReqFraming::Empty
            ),
            "GET /a?b=1 HTTP/1.1\r\nhost: app\r\nx-many: 1\r\nx-many: 2\r\n\r\n"
        );
        assert_eq!(
            head(
                &Method::POST,
                "/",
                &[("content-length", "99"), ("transfer-encoding", "gzip")],
                ReqFraming::Length(3)
            ),
            "POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(
            head(&Method::PUT, "/u", &[("host", "h")], ReqFraming::Chunked),
            "PUT /u HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // An empty POST keeps the client's `Content-Length: 0`.
        assert_eq!(
            head(
                &Method::POST,
                "http://a.test",
                &[("content-length", "0")],
                ReqFraming::Empty
            ),
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
    }

    fn parse(wire: &[u8], method: &Method) -> Result<Option<(Head, HeaderMap)>, AppError> {
        let mut h = HeaderMap::new();
        let wire = Bytes::copy_from_slice(wire);
        Ok(parse_head(&wire, &mut h, method)?.map(|head| (head, h)))
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let get = &Method::GET;
        let framing = |wire: &[u8], m: &Method| {
            let (h, _) = parse(wire, m).unwrap().unwrap();
            (h.framing, h.keep_alive)
        };
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", get),
            (RespFraming::Length(5), true)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                &Method::HEAD
            ),
            (RespFraming::Empty, true)
        );
        for status in [204, 304, 100, 101] {
            let wire = format!("HTTP/1.1 {status} X\r\ncontent-length: 5\r\n\r\n");
            assert_eq!(framing(wire.as_bytes(), get).0, RespFraming::Empty);
        }
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                get
            ),
            (RespFraming::Chunked, true)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
                get
            ),
            (RespFraming::Chunked, false)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", get),
            (RespFraming::Close, false)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", get),
            (RespFraming::Close, false)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                get
            ),
            (RespFraming::Length(0), false)
        );
        assert_eq!(
            framing(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", get),
            (RespFraming::Length(0), false)
        );
        assert_eq!(
            framing(
                b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
                get
            ),
            (RespFraming::Length(0), true)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\ncontent-length: 4\r\n\r\n",
                get
            ),
            (RespFraming::Length(4), true)
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 4, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(matches!(parse(bad, get), Err(AppError::ContentLength)));
        }
    }

    #[test]
    fn response_heads_are_bounded() {
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-le", &Method::GET)
                .unwrap()
                .is_none()
        );
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX_HEAD {
            big.extend_from_slice(b"x-filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        // Still incomplete at the limit: an error, not a request for more.
        assert!(matches!(
            parse(&big, &Method::GET),
            Err(AppError::HeadTooLarge | AppError::TooManyHeaders)
        ));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse(&many, &Method::GET),
            Err(AppError::TooManyHeaders)
        ));
        assert!(matches!(
            parse(b"HTTX/1.1 200 OK\r\n\r\n", &Method::GET),
            Err(AppError::Head(_))
        ));
    }
}
