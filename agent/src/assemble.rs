//! Turns the tailer's raw lines into records: parses each line, joins partial fragments per
//! (file, stream) up to a cap (longer joins are truncated and marked), ships malformed lines raw,
//! and computes the offset each record may acknowledge. A record's commit offset never passes
//! the start of a fragment still waiting for its end, so after a restart an unfinished join is
//! read again from its first fragment.
//!
//! A join cut by a rotation (`P` at the end of one file, `F` at the start of the next) is carried
//! from the file's end to the next file of the same container instance and stream. The first
//! file is then acknowledged only together with the joined record, so its checkpoint stays
//! before the fragment and a restart rebuilds the join. A carried join that finds no
//! continuation is shipped marked `unterminated` by [`Assembler::expire`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use file_tailer::{ContainerInfo, Event, FileId};

use crate::metrics::Metrics;
use crate::parse::{Stream, parse_line};
use crate::record::{
    ByteBudget, FLAG_MALFORMED, FLAG_TRUNCATED, FLAG_UNTERMINATED, FileMeta, Record,
};

/// Memory a record costs beyond its line: the struct, its `Arc`, and allocator overhead. Charged
/// to the byte budget so the bound is on real memory, not just log bytes.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Record>() + 64;

struct Pending {
    buf: Vec<u8>,
    start: u64,
    ts_ns: i64,
    truncated: bool,
    /// Earlier files the join began in: (file, offset of its first fragment there, final
    /// offset). They are acknowledged together with the joined record.
    prev: Vec<(FileId, u64, u64)>,
}

struct FileState {
    meta: Arc<FileMeta>,
    pending: [Option<Pending>; 2],
}

/// The file a record was read from and the offset its delivery acknowledges there.
#[derive(Clone, Copy)]
struct Origin<'a> {
    file: FileId,
    meta: &'a Arc<FileMeta>,
    commit: u64,
}

/// A container instance: fragments only continue within one (same restart number).
type CarryKey = (Arc<ContainerInfo>, u32);

/// A join whose file ended before its final fragment, waiting for the next file.
struct Carried {
    pending: Pending,
    /// The file it was carried from, for the record if it never continues.
    meta: Arc<FileMeta>,
    since: Instant,
}

/// Per-reader assembly state.
pub struct Assembler {
    files: HashMap<FileId, FileState>,
    carried: HashMap<CarryKey, [Option<Carried>; 2]>,
    max_joined: usize,
    budget: ByteBudget,
    metrics: Arc<Metrics>,
    now_ns: i64,
}

impl std::fmt::Debug for Assembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembler")
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

impl Assembler {
    pub fn new(max_joined: usize, budget: ByteBudget, metrics: Arc<Metrics>) -> Self {
        Self {
            files: HashMap::new(),
            carried: HashMap::new(),
            max_joined,
            budget,
            metrics,
            now_ns: 0,
        }
    }

    /// Sets the "read at" time stamped on records produced next.
    pub fn set_now(&mut self, now_ns: i64) {
        self.now_ns = now_ns;
    }

    fn min_pending_start(st: &FileState) -> Option<u64> {
        st.pending.iter().flatten().map(|p| p.start).min()
    }

    /// Offset a record ending at `end` may acknowledge in its file.
    fn commit(st: &FileState, end: u64) -> u64 {
        Self::min_pending_start(st).map_or(end, |s| s.min(end))
    }

    /// Where a record ending at `end` of `file` comes from, as of now (the commit depends on the
    /// joins still pending, so it is taken at the moment the record is made).
    fn origin(st: &FileState, file: FileId, end: u64) -> Origin<'_> {
        Origin {
            file,
            meta: &st.meta,
            commit: Self::commit(st, end),
        }
    }

    fn record(
        &self,
        at: Origin<'_>,
        ts_ns: i64,
        stream: Option<Stream>,
        line: String,
        flags: u8,
    ) -> Record {
        let Origin { file, meta, commit } = at;
        let guard = self.budget.take(line.len() + RECORD_OVERHEAD);
        Record {
            file,
            commit,
            also: Vec::new(),
            ts_ns,
            stream,
            line,
            flags,
            meta: meta.clone(),
            read_ns: self.now_ns,
            guard,
        }
    }

    /// What delivering a join carried from earlier files acknowledges in them: their end, or,
    /// while the other stream's join still waits in the same file, that join's first fragment.
    fn release(
        &self,
        key: &CarryKey,
        other: Option<&Pending>,
        idx: usize,
        prev: &[(FileId, u64, u64)],
    ) -> Vec<(FileId, u64)> {
        let other = other.or_else(|| {
            self.carried
                .get(key)
                .and_then(|c| c[1 - idx].as_ref())
                .map(|c| &c.pending)
        });
        prev.iter()
            .map(|&(f, _, end)| {
                let held = other.and_then(|o| o.prev.iter().find(|p| p.0 == f));
                (f, held.map_or(end, |h| h.1))
            })
            .collect()
    }

    /// Ships a carried join that found no continuation, marked unterminated.
    fn flush_carried(&self, key: &CarryKey, idx: usize, c: &Carried, out: &mut Vec<Record>) {
        let mut also = self.release(key, None, idx, &c.pending.prev);
        let Some((file, commit)) = also.pop() else {
            return;
        };
        let flags = FLAG_UNTERMINATED
            | if c.pending.truncated {
                FLAG_TRUNCATED
            } else {
                0
            };
        let mut r = self.record(
            Origin {
                file,
                meta: &c.meta,
                commit,
            },
            c.pending.ts_ns,
            Some(Stream::from_index(idx)),
            lossy(&c.pending.buf),
            flags,
        );
        r.also = also;
        out.push(r);
    }

    /// Ships joins carried over a rotation that waited `max_age` for their next file in vain
    /// (the container stopped, or its next file never came). Call it only while the reader is
    /// caught up, so a backlog is never mistaken for a missing continuation.
    pub fn expire(&mut self, max_age: Duration, out: &mut Vec<Record>) {
        if self.carried.is_empty() {
            return;
        }
        let keys: Vec<CarryKey> = self.carried.keys().cloned().collect();
        for key in keys {
            for idx in 0..2 {
                let old = self
                    .carried
                    .get(&key)
                    .and_then(|c| c[idx].as_ref())
                    .is_some_and(|c| c.since.elapsed() >= max_age);
                if !old {
                    continue;
                }
                let c = self.carried.get_mut(&key).and_then(|c| c[idx].take());
                if let Some(c) = c {
                    self.flush_carried(&key, idx, &c, out);
                }
            }
            if self
                .carried
                .get(&key)
                .is_some_and(|c| c.iter().all(Option::is_none))
            {
                self.carried.remove(&key);
            }
        }
    }

    /// A join carried from the previous file of this container and stream, if any.
    fn take_carried(&mut self, meta: &FileMeta, idx: usize) -> Option<Pending> {
        if self.carried.is_empty() {
            return None;
        }
        let key = (meta.container.clone(), meta.restart);
        let slot = self.carried.get_mut(&key)?;
        let c = slot[idx].take();
        if slot.iter().all(Option::is_none) {
            self.carried.remove(&key);
        }
        c.map(|c| c.pending)
    }

    /// Handles one tailer event, pushing finished records to `out`.
    pub fn handle(&mut self, ev: Event<'_>, out: &mut Vec<Record>) {
        match ev {
            Event::Opened {
                file,
                container,
                restart,
                path,
            } => {
                self.files.insert(
                    file,
                    FileState {
                        meta: Arc::new(FileMeta {
                            container,
                            restart,
                            path: path.display().to_string(),
                        }),
                        pending: [None, None],
                    },
                );
            }
            Event::Line(l) => {
                self.metrics.lines_read.inc();
                self.metrics.bytes_read.inc_by(l.end - l.start);
                if l.truncated {
                    self.metrics.truncated_lines.inc();
                }
                let Some(mut st) = self.files.remove(&l.file) else {
                    return;
                };
                match parse_line(l.data) {
                    Ok(p) => {
                        let idx = p.stream.index();
                        let extra = if l.truncated { FLAG_TRUNCATED } else { 0 };
                        if st.pending[idx].is_none()
                            && let Some(mut c) = self.take_carried(&st.meta, idx)
                        {
                            // The join continues here: this file holds from this fragment on.
                            c.start = l.start;
                            st.pending[idx] = Some(c);
                        }
                        if p.partial || st.pending[idx].is_some() {
                            let max = self.max_joined;
                            let pend = st.pending[idx].get_or_insert_with(|| Pending {
                                buf: Vec::new(),
                                start: l.start,
                                ts_ns: p.ts_ns,
                                truncated: false,
                                prev: Vec::new(),
                            });
                            let room = max.saturating_sub(pend.buf.len());
                            if p.msg.len() > room {
                                if !pend.truncated {
                                    self.metrics.truncated_lines.inc();
                                }
                                pend.truncated = true;
                                pend.buf.extend_from_slice(&p.msg[..room]);
                            } else {
                                pend.buf.extend_from_slice(&p.msg);
                            }
                            if l.truncated {
                                pend.truncated = true;
                            }
                            if !p.partial
                                && let Some(pend) = st.pending[idx].take()
                            {
                                let flags = if pend.truncated { FLAG_TRUNCATED } else { 0 };
                                let mut r = self.record(
                                    Self::origin(&st, l.file, l.end),
                                    pend.ts_ns,
                                    Some(p.stream),
                                    lossy(&pend.buf),
                                    flags,
                                );
                                if !pend.prev.is_empty() {
                                    let key = (st.meta.container.clone(), st.meta.restart);
                                    let other = st.pending[1 - idx].as_ref();
                                    r.also = self.release(&key, other, idx, &pend.prev);
                                }
                                out.push(r);
                            }
                        } else {
                            let r = self.record(
                                Self::origin(&st, l.file, l.end),
                                p.ts_ns,
                                Some(p.stream),
                                lossy(&p.msg),
                                extra,
                            );
                            out.push(r);
                        }
                    }
                    Err(format) => {
                        self.metrics.malformed(format);
                        let r = self.record(
                            Self::origin(&st, l.file, l.end),
                            self.now_ns,
                            None,
                            lossy(l.data),
                            FLAG_MALFORMED | if l.truncated { FLAG_TRUNCATED } else { 0 },
                        );
                        out.push(r);
                    }
                }
                self.files.insert(l.file, st);
            }
            Event::Eof { file, offset } => {
                let Some(mut st) = self.files.remove(&file) else {
                    return;
                };
                // Fragments whose final part is not in this file: the next file of the
                // container continues them (a rotation cut the line).
                let key = (st.meta.container.clone(), st.meta.restart);
                for idx in 0..2 {
                    let Some(mut p) = st.pending[idx].take() else {
                        continue;
                    };
                    p.prev.push((file, p.start, offset));
                    let c = Carried {
                        pending: p,
                        meta: st.meta.clone(),
                        since: Instant::now(),
                    };
                    let old = self.carried.entry(key.clone()).or_default()[idx].replace(c);
                    if let Some(old) = old {
                        self.flush_carried(&key, idx, &old, out);
                    }
                }
            }
        }
    }
}
