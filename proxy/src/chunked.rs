//! The chunked transfer coding (RFC 9112 §7.1), shared by both HTTP/1 codecs: the app's
//! response bodies (`upstream/`) and the clients' request bodies (`conn/h1/`) are decoded
//! incrementally (a chunk line, chunk data or the trailer section may be split across reads at
//! any byte; chunk extensions are skipped; the trailer section is bounded like a head), and the
//! bodies the proxy sends are framed with [`chunk_line`] and [`encode_last_chunk`].

use std::io::Write as _;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::upstream::{MAX_HEAD, MAX_HEADERS};

/// A chunked body that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk line, chunk delimiter or trailer field is malformed.
    #[error("malformed chunked encoding")]
    Malformed,
    /// The trailer section is larger than a head may be.
    #[error("the chunked body's trailer section is too large")]
    TrailersTooLarge,
}

/// The chunk-size line for a chunk of `len` bytes, written into `line`; returns its length.
pub fn chunk_line(len: usize, line: &mut [u8; 20]) -> usize {
    let mut cursor = std::io::Cursor::new(&mut line[..]);
    // 16 hex digits and CRLF always fit.
    let _ = write!(cursor, "{len:x}\r\n");
    cursor.position() as usize
}

/// The end of a chunked body: the last chunk, the trailer fields, the final CRLF.
pub fn encode_last_chunk(trailers: Option<&HeaderMap>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The longest chunk line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In the hex size; `digits` read so far.
    Size { digits: u8 },
    /// Whitespace after the size.
    SizeSpace,
    /// In a chunk extension (ignored).
    Extension,
    /// The size line's CR was read.
    SizeLf,
    /// In chunk data.
    Data,
    /// After chunk data: its CR.
    DataCr,
    /// After chunk data: its LF.
    DataLf,
    /// After the last chunk: the trailer section.
    Trailers,
    /// The body is complete.
    Done,
}

/// An incremental decoder of a chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The current chunk's size, then what is left of its data.
    size: u64,
    /// Bytes of the current size line (bounded by [`MAX_CHUNK_LINE`]).
    line: usize,
    /// The trailer section as read so far (only after the last chunk).
    trailer: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: ChunkState::Size { digits: 0 },
            size: 0,
            line: 0,
            trailer: Vec::new(),
            trailers: None,
        }
    }
}

impl ChunkedDecoder {
    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Trailer fields wait to be taken.
    pub fn has_trailers(&self) -> bool {
        self.trailers.is_some()
    }

    /// The trailer fields, once done (if there were any).
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// Decode `input`, appending chunk data to `data`. Returns how many bytes were used: all of
    /// them, unless the body ended inside `input`.
    pub fn decode(&mut self, input: &[u8], data: &mut BytesMut) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == ChunkState::Data {
                let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data.extend_from_slice(&input[i..i + n]);
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                ChunkState::Size { digits } => {
                    self.line += 1;
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 16 {
                            return Err(ChunkedError::Malformed);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        ChunkState::Size { digits: digits + 1 }
                    } else if digits == 0 {
                        return Err(ChunkedError::Malformed);
                    } else {
                        self.after_size(b)?
                    }
                }
                ChunkState::SizeSpace => self.after_size(b)?,
                ChunkState::Extension => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Err(ChunkedError::Malformed);
                    }
                    match b {
                        b'\r' => ChunkState::SizeLf,
                        b'\n' => return Err(ChunkedError::Malformed),
                        _ => ChunkState::Extension,
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Malformed);
                    }
                    self.line = 0;
                    if self.size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data
                    }
                }
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => ChunkState::Size { digits: 0 },

                ChunkState::Trailers => {
                    self.trailer.push(b);
                    self.trailer_byte()?
                }
                // A bad CRLF after chunk data; data is taken before this match, and nothing is
                // decoded once done.
                ChunkState::DataCr | ChunkState::DataLf | ChunkState::Data | ChunkState::Done => {
                    return Err(ChunkedError::Malformed);
                }
            };
            if self.state == ChunkState::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// A byte after the size digits (or their whitespace).
    fn after_size(&mut self, b: u8) -> Result<ChunkState, ChunkedError> {
        self.line += 1;
        match b {
            b' ' | b'\t' => Ok(ChunkState::SizeSpace),
            b';' => Ok(ChunkState::Extension),
            b'\r' => Ok(ChunkState::SizeLf),
            _ => Err(ChunkedError::Malformed),
        }
    }

    /// A byte of the trailer section was appended: is the section complete?
    fn trailer_byte(&mut self) -> Result<ChunkState, ChunkedError> {
        if self.trailer.len() > MAX_HEAD {
            return Err(ChunkedError::TrailersTooLarge);
        }
        if self.trailer == b"\r\n" {
            self.trailer = Vec::new();
            return Ok(ChunkState::Done);
        }
        if !self.trailer.ends_with(b"\r\n\r\n") {
            return Ok(ChunkState::Trailers);
        }
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match httparse::parse_headers(&self.trailer, &mut raw) {
            Ok(httparse::Status::Complete((_, fields))) => {
                let mut map = HeaderMap::with_capacity(fields.len());
                for f in fields {
                    let name = HeaderName::from_bytes(f.name.as_bytes())
                        .map_err(|_| ChunkedError::Malformed)?;
                    let value =
                        HeaderValue::from_bytes(f.value).map_err(|_| ChunkedError::Malformed)?;
                    map.append(name, value);
                }
                map
            }
            Ok(httparse::Status::Partial) => return Ok(ChunkState::Trailers),
            Err(_) => return Err(ChunkedError::Malformed),
        };
        self.trailer = Vec::new();
        self.trailers = (!parsed.is_empty()).then_some(parsed);
        Ok(ChunkState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `wire` fed in pieces of `step` bytes.
    fn decode_in_steps(
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::default();
        let mut data = BytesMut::new();
        let mut used = 0;
        for piece in wire.chunks(step) {
            used += d.decode(piece, &mut data)?;
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "not done after {used} bytes");
        Ok((data.to_vec(), d.take_trailers(), used))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let wire = b"5;name=value;other\r\nhello\r\n6 \r\n world\r\nA\r\n0123456789\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\n";
        for step in 1..=wire.len() {
            let (data, trailers, used) = decode_in_steps(wire, step).unwrap();
            assert_eq!(data, b"hello world0123456789", "step {step}");
            let t = trailers.expect("trailers");
            assert_eq!(t["x-a"], "1");
            assert_eq!(t["x-b"], "2");
            assert_eq!(used, wire.len());
        }
    }

    #[test]
    fn a_chunked_body_without_trailers_stops_at_its_end() {
        let wire = b"3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
        let (data, trailers, used) = decode_in_steps(wire, wire.len()).unwrap();
        assert_eq!(data, b"abc");
        assert!(trailers.is_none());
        assert_eq!(used, 13, "the bytes after the body are not used");
    }

    #[test]
    fn chunk_lines_and_the_last_chunk() {
        let mut line = [0u8; 20];
        let n = chunk_line(0x1a2b, &mut line);
        assert_eq!(&line[..n], b"1a2b\r\n");
        let mut t = HeaderMap::new();
        t.insert("x-sum", HeaderValue::from_static("abc"));
        assert_eq!(encode_last_chunk(Some(&t)), b"0\r\nx-sum: abc\r\n\r\n");
        assert_eq!(encode_last_chunk(None), b"0\r\n\r\n");
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for wire in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"3\nabc\r\n",
            b"3 x\r\nabc\r\n",
            b"11111111111111111\r\n",
        ] {
            let mut d = ChunkedDecoder::default();
            let mut data = BytesMut::new();
            assert!(
                d.decode(wire, &mut data).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(wire)
            );
        }
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 10, b'x');
        let mut d = ChunkedDecoder::default();
        assert!(d.decode(&long, &mut BytesMut::new()).is_err());
    }
}
