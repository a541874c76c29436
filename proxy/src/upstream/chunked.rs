//! The chunked transfer coding of the app's response bodies (RFC 9112 §7.1), decoded
//! incrementally: a chunk line, chunk data or the trailer section may be split across reads at
//! any byte. Chunk extensions are skipped; the trailer section is bounded like a head.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::AppError;
use super::codec::{MAX_HEAD, MAX_HEADERS};

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
    pub fn decode(&mut self, input: &[u8], data: &mut BytesMut) -> Result<usize, AppError> {
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
                            return Err(AppError::Chunked);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        ChunkState::Size { digits: digits + 1 }
                    } else if digits == 0 {
                        return Err(AppError::Chunked);
                    } else {
                        self.after_size(b)?
                    }
                }
                ChunkState::SizeSpace => self.after_size(b)?,
                ChunkState::Extension => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Err(AppError::Chunked);
                    }
                    match b {
                        b'\r' => ChunkState::SizeLf,
                        b'\n' => return Err(AppError::Chunked),
                        _ => ChunkState::Extension,
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(AppError::Chunked);
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
                    return Err(AppError::Chunked);
                }
            };
            if self.state == ChunkState::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// A byte after the size digits (or their whitespace).
    fn after_size(&mut self, b: u8) -> Result<ChunkState, AppError> {
        self.line += 1;
        match b {
            b' ' | b'\t' => Ok(ChunkState::SizeSpace),
            b';' => Ok(ChunkState::Extension),
            b'\r' => Ok(ChunkState::SizeLf),
            _ => Err(AppError::Chunked),
        }
    }

    /// A byte of the trailer section was appended: is the section complete?
    fn trailer_byte(&mut self) -> Result<ChunkState, AppError> {
        if self.trailer.len() > MAX_HEAD {
            return Err(AppError::HeadTooLarge);
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
                    let name =
                        HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| AppError::Chunked)?;
                    let value = HeaderValue::from_bytes(f.value).map_err(|_| AppError::Chunked)?;
                    map.append(name, value);
                }
                map
            }
            Ok(httparse::Status::Partial) => return Ok(ChunkState::Trailers),
            Err(_) => return Err(AppError::Chunked),
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
    ) -> Result<(Vec<u8>, Option<HeaderMap>, usize), AppError> {
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
