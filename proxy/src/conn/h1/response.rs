//! Responses onto the wire: the head serialized into a buffer sized to it (with the first body
//! bytes when they are ready and small, so a small response is one write), the framing chosen
//! by RFC 9112 §6 (none for HEAD/1xx/204/304, `Content-Length` when the size is known, chunked
//! for HTTP/1.1, close-delimited for HTTP/1.0), trailers on chunked bodies, and the `Date`
//! header hyper used to add, formatted once per second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf as _, Bytes};
use http::header;
use http::response::Parts;
use http::{Method, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::chunked::{chunk_line, encode_last_chunk};
use crate::headers::FieldFacts;

/// First body bytes up to this size go out in the head's write.
const COALESCE: usize = 16 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

/// What the request says about its response.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask<'a> {
    pub method: &'a Method,
    pub version: Version,
    pub keep_alive: bool,
}

/// A response head ready to write and how its body follows.
pub(super) struct Encoded {
    pub head: Vec<u8>,
    framing: Framing,
    /// The connection stays open after this response.
    pub keep_alive: bool,
}

/// Serializes `parts` for the request `ask`; `hint` is the body's exact size, if known. The
/// fields are walked once to size the head and note what the framing depends on, and once to
/// write them; the framing fields are this codec's own, written after them.
pub(super) fn encode(parts: &Parts, ask: Ask<'_>, hint: Option<u64>) -> Encoded {
    let status = parts.status;
    let headers = &parts.headers;
    let mut facts = FieldFacts::default();
    let mut has_date = false;
    let mut fields = 0;
    for (name, value) in headers {
        let _ = facts.see(name, value.as_bytes());
        has_date |= name == header::DATE;
        fields += name.as_str().len() + value.len() + 4;
    }
    let mut keep_alive = ask.keep_alive && !facts.close;
    let bodyless = *ask.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodyless {
        Framing::None
    } else if let Some(n) = hint {
        Framing::Length(n)
    } else if let Ok(Some(n)) = facts.content_length {
        Framing::Length(n)
    } else if ask.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::Close
    };
    // A known size replaces the response's `Content-Length`, and the chunked coding goes
    // without one (an invalid one, since a valid one would have framed the body).
    let own_length = !bodyless && (hint.is_some() || framing == Framing::Chunked);
    let mut head = Vec::with_capacity(fields + 128);
    head.extend_from_slice(if ask.version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if own_length && name == header::CONTENT_LENGTH {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) if hint.is_some() => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if status != StatusCode::SWITCHING_PROTOCOLS && !facts.connection {
        if !keep_alive && ask.version == Version::HTTP_11 {
            head.extend_from_slice(b"connection: close\r\n");
        } else if keep_alive && ask.version == Version::HTTP_10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !has_date {
        head.extend_from_slice(b"date: ");
        with_date(|d| head.extend_from_slice(d));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Encoded {
        head,
        framing,
        keep_alive,
    }
}

thread_local! {
    /// The current second and its IMF-fixdate.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = secs;
            }
        }
        f(&text[..]);
    });
}

/// How writing a response ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// Complete and correctly delimited: the connection may carry another exchange.
    Complete,
    /// The body failed, or it was close-delimited: the connection must close.
    MustClose,
}

/// Writes the head in `enc` and then the body to `io`. I/O errors end the connection (`Err`).
pub(super) async fn write<W, B>(io: &mut W, enc: Encoded, body: B) -> std::io::Result<Written>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let Encoded {
        mut head, framing, ..
    } = enc;
    if framing == Framing::None {
        io.write_all(&head).await?;
        io.flush().await?;
        return Ok(Written::Complete);
    }
    let mut remaining = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    // The first frame, if it is there already, rides with the head.
    let mut first =
        match std::future::poll_fn(|cx| std::task::Poll::Ready(body.as_mut().poll_frame(cx))).await
        {
            std::task::Poll::Ready(frame) => Some(frame),
            std::task::Poll::Pending => None,
        };
    let mut ended = false;
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None if ended => break,
            None => {
                if !head.is_empty() {
                    io.write_all(&head).await?;
                    head = Vec::new();
                }
                io.flush().await?;
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let frame = match frame {
            None => {
                match framing {
                    Framing::Chunked => head.extend_from_slice(b"0\r\n\r\n"),
                    Framing::Length(_) if remaining != 0 => {
                        flush_head(io, &head).await?;
                        return Ok(Written::MustClose);
                    }
                    _ => {}
                }
                break;
            }
            Some(Err(_)) => {
                // Whatever was sent so far cannot be completed: the client sees the close.
                flush_head(io, &head).await?;
                return Ok(Written::MustClose);
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(mut data) => {
                if data.is_empty() {
                    continue;
                }
                if let Framing::Length(_) = framing {
                    if data.len() as u64 > remaining {
                        flush_head(io, &head).await?;
                        return Ok(Written::MustClose);
                    }
                    remaining -= data.len() as u64;
                }
                let mut line = [0u8; 20];
                let line_len = if framing == Framing::Chunked {
                    chunk_line(data.len(), &mut line)
                } else {
                    0
                };
                if head.len() + data.len() <= COALESCE {
                    head.extend_from_slice(&line[..line_len]);
                    head.extend_from_slice(&data);
                    if framing == Framing::Chunked {
                        head.extend_from_slice(b"\r\n");
                    }
                } else {
                    head.extend_from_slice(&line[..line_len]);
                    if !head.is_empty() {
                        io.write_all(&head).await?;
                        head = Vec::new();
                    }
                    while data.has_remaining() {
                        let n = io.write(&data).await?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::WriteZero.into());
                        }
                        data.advance(n);
                    }
                    if framing == Framing::Chunked {
                        io.write_all(b"\r\n").await?;
                    }
                }
                if remaining == 0 && framing != Framing::Chunked {
                    // Length-delimited and complete: the body's end need not be awaited.
                    ended = true;
                }
            }
            Err(frame) => {
                let trailers = frame.into_trailers().ok();
                if framing == Framing::Chunked {
                    head.extend_from_slice(&encode_last_chunk(trailers.as_ref()));
                }
                break;
            }
        }
    }
    flush_head(io, &head).await?;
    Ok(if framing == Framing::Close {
        Written::MustClose
    } else {
        Written::Complete
    })
}

async fn flush_head<W: AsyncWrite + Unpin>(io: &mut W, pending: &[u8]) -> std::io::Result<()> {
    if !pending.is_empty() {
        io.write_all(pending).await?;
    }
    io.flush().await
}

/// The framing a response to `ask` gets for `parts` (for tests of the head alone).
#[cfg(test)]
fn head_of(parts: &Parts, ask: Ask<'_>, hint: Option<u64>) -> String {
    String::from_utf8(encode(parts, ask, hint).head).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16) -> Parts {
        let mut r = http::Response::new(());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r.into_parts().0
    }

    const GET11: Ask<'static> = Ask {
        method: &Method::GET,
        version: Version::HTTP_11,
        keep_alive: true,
    };

    #[test]
    fn response_framing_follows_rfc_9112() {
        let h = head_of(&parts(200), GET11, Some(5));
        assert!(
            h.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n"),
            "{h}"
        );
        assert!(h.contains("\r\ndate: "));
        let h = head_of(&parts(200), GET11, None);
        assert!(h.contains("transfer-encoding: chunked\r\n"), "{h}");
        let h = head_of(&parts(204), GET11, Some(0));
        assert!(
            !h.contains("content-length") && !h.contains("chunked"),
            "{h}"
        );
        let ask10 = Ask {
            version: Version::HTTP_10,
            ..GET11
        };
        let enc = encode(&parts(200), ask10, None);
        assert!(!enc.keep_alive);
        let h = head_of(&parts(200), ask10, Some(1));
        assert!(h.starts_with("HTTP/1.0 200 OK\r\n") && h.contains("connection: keep-alive"));
        let close = Ask {
            keep_alive: false,
            ..GET11
        };
        assert!(head_of(&parts(200), close, Some(1)).contains("connection: close\r\n"));
    }

    #[test]
    fn the_codec_writes_the_framing_fields() {
        let with = |fields: &[(&str, &str)]| {
            let mut p = parts(200);
            for (n, v) in fields {
                p.headers.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            p
        };
        // A known size replaces the app's length.
        let h = head_of(
            &with(&[("content-length", "99"), ("x-a", "1")]),
            GET11,
            Some(3),
        );
        assert_eq!(h.matches("content-length").count(), 1, "{h}");
        assert!(h.contains("x-a: 1\r\ncontent-length: 3\r\n"), "{h}");
        // Without one, a valid length frames the body as it is.
        let enc = encode(&with(&[("content-length", "7")]), GET11, None);
        assert_eq!(enc.framing, Framing::Length(7));
        let h = String::from_utf8(enc.head).unwrap();
        assert_eq!(h.matches("content-length: 7").count(), 1, "{h}");
        // An invalid one is dropped for the chunked coding.
        let h = head_of(&with(&[("content-length", "7, 8")]), GET11, None);
        assert!(
            !h.contains("content-length") && h.contains("chunked"),
            "{h}"
        );
        // A bodyless response keeps what the app said.
        let h = head_of(&with(&[("content-length", "7")]), GET11, Some(0));
        let head = Ask {
            method: &Method::HEAD,
            ..GET11
        };
        let h2 = head_of(&with(&[("content-length", "7")]), head, Some(0));
        assert!(h.contains("content-length: 0\r\n"), "{h}");
        assert!(h2.contains("content-length: 7\r\n"), "{h2}");
        // The app's `Connection` and `Date` are not doubled.
        let h = head_of(
            &with(&[("connection", "close"), ("date", "x")]),
            GET11,
            Some(0),
        );
        assert_eq!(
            h.matches("connection").count() + h.matches("date").count(),
            2,
            "{h}"
        );
        assert!(!encode(&with(&[("connection", "close")]), GET11, Some(0)).keep_alive);
    }
}
