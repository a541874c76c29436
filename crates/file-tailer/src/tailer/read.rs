//! Reading: opens plain and gzipped files at an uncompressed offset, hands out complete lines
//! (splitting ones over the cap), keeps the order between a container's files, and finalizes a
//! file that reached its final end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use super::{Event, FileId, Line, Tailer, Tracked};

pub(super) enum Reader {
    Plain(File),
    Gz(Box<flate2::read::MultiGzDecoder<File>>),
}

impl Reader {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(f) => f.read(buf),
            Reader::Gz(d) => d.read(buf),
        }
    }

    /// Opens `path` positioned at uncompressed offset `pos`.
    pub(super) fn open(path: &Path, gz: bool, pos: u64) -> io::Result<Reader> {
        let mut f = File::open(path)?;
        if gz {
            let mut d = flate2::read::MultiGzDecoder::new(f);
            io::copy(&mut (&mut d).take(pos), &mut io::sink())?;
            Ok(Reader::Gz(Box::new(d)))
        } else {
            f.seek(SeekFrom::Start(pos))?;
            Ok(Reader::Plain(f))
        }
    }
}

impl Tailer {
    /// A file may be read only when every older file of its container reached its end.
    pub(super) fn readable(&self, id: FileId) -> bool {
        let Some(t) = self.tracked.get(&id) else {
            return false;
        };
        let key = t.order_key();
        let Some(ids) = self.containers.get(&t.dir) else {
            return true;
        };
        !ids.iter().any(|o| {
            *o != id
                && self
                    .tracked
                    .get(o)
                    .is_some_and(|ot| ot.final_offset.is_none() && ot.order_key() < key)
        })
    }

    /// Reads up to `budget` bytes of one file. Returns (bytes read, more may be available).
    pub(super) fn read_file(
        &mut self,
        id: FileId,
        budget: usize,
        sink: &mut dyn FnMut(Event<'_>),
    ) -> (usize, bool) {
        let chunk = self.cfg.read_chunk;
        let max_line = self.cfg.max_line_bytes;
        let grace = self.cfg.rotate_grace;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut truncated_file = false;
        let mut finalize = false;
        let mut total = 0;
        let mut more = false;
        {
            let Some(t) = self.tracked.get_mut(&id) else {
                self.scratch = scratch;
                return (0, false);
            };
            let Some(reader) = t.reader.as_mut() else {
                self.scratch = scratch;
                return (0, false);
            };
            if let Reader::Plain(f) = reader
                && let Ok(m) = f.metadata()
            {
                // Shorter than what we read, or (truncated and already refilled past our
                // position) a different first line: the content was replaced in place.
                if m.len() < t.pos || super::rotate::first_line_fp(f) != Some(t.fp) {
                    truncated_file = true;
                } else {
                    t.size = m.len();
                }
            }
            loop {
                if truncated_file {
                    break;
                }
                if total >= budget {
                    more = true;
                    break;
                }
                scratch.clear();
                scratch.append(&mut t.carry);
                let base = t.pos - scratch.len() as u64;
                let have = scratch.len();
                scratch.resize(have + chunk, 0);
                let n = match reader_read(t, &mut scratch[have..]) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                        0
                    }
                };
                scratch.truncate(have + n);
                if n == 0 {
                    t.carry = std::mem::take(&mut scratch);
                    if t.current {
                        t.eof_since = None;
                    } else {
                        let since = *t.eof_since.get_or_insert_with(Instant::now);
                        if t.gz || since.elapsed() >= grace {
                            finalize = true;
                        }
                    }
                    break;
                }
                t.eof_since = None;
                t.pos += n as u64;
                if t.gz {
                    t.size = t.size.max(t.pos);
                }
                total += n;
                let mut line_start = 0;
                // Only the new bytes can contain a newline we have not seen yet.
                let mut search = have;
                while let Some(i) = memchr::memchr(b'\n', &scratch[search..]) {
                    let nl = search + i;
                    sink(Event::Line(Line {
                        file: id,
                        start: base + line_start as u64,
                        end: base + nl as u64 + 1,
                        data: &scratch[line_start..nl],
                        truncated: false,
                    }));
                    line_start = nl + 1;
                    search = line_start;
                }
                let mut rest = &scratch[line_start..];
                let mut rest_base = base + line_start as u64;
                while rest.len() >= max_line {
                    sink(Event::Line(Line {
                        file: id,
                        start: rest_base,
                        end: rest_base + max_line as u64,
                        data: &rest[..max_line],
                        truncated: true,
                    }));
                    rest = &rest[max_line..];
                    rest_base += max_line as u64;
                }
                t.carry.extend_from_slice(rest);
            }
            if t.carry.capacity() > 4 * chunk && t.carry.len() < chunk {
                t.carry.shrink_to_fit();
            }
        }
        scratch.clear();
        self.scratch = scratch;
        if truncated_file {
            self.handle_truncation(id);
            return (total, false);
        }
        if finalize {
            self.finalize(id, sink);
        } else if self
            .tracked
            .get(&id)
            .is_some_and(|t| !t.current && t.final_offset.is_none() && !more)
        {
            self.waiting.insert(id);
        }
        (total, more)
    }

    /// The file reached its final end: flush an unterminated last line, report EOF, close it.
    pub(super) fn finalize(&mut self, id: FileId, sink: &mut dyn FnMut(Event<'_>)) {
        self.waiting.remove(&id);
        let Some(t) = self.tracked.get_mut(&id) else {
            return;
        };
        if !t.carry.is_empty() {
            let carry = std::mem::take(&mut t.carry);
            sink(Event::Line(Line {
                file: id,
                start: t.pos - carry.len() as u64,
                end: t.pos,
                data: &carry,
                truncated: true,
            }));
        }
        t.final_offset = Some(t.pos);
        t.reader = None;
        self.by_inode.remove(&(t.dev, t.ino));
        sink(Event::Eof {
            file: id,
            offset: t.pos,
        });
        let dir = t.dir.clone();
        let done = t.committed >= t.pos;
        // Newer files of the container may now be read.
        if let Some(ids) = self.containers.get(&dir) {
            for o in ids.clone() {
                if self.blocked.remove(&o) {
                    self.enqueue(o);
                }
            }
        }
        if done {
            self.finish(id);
        }
    }
}

fn reader_read(t: &mut Tracked, buf: &mut [u8]) -> io::Result<usize> {
    match t.reader.as_mut() {
        Some(r) => r.read(buf),
        None => Ok(0),
    }
}
