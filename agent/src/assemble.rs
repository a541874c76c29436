//! Turns the tailer's raw lines into records: parses each line, joins partial fragments per
//! (file, stream) up to a cap (longer joins are truncated and marked), ships malformed lines raw,
//! and computes the offset each record may acknowledge. A record's commit offset never passes
//! the start of a fragment still waiting for its end, so after a restart an unfinished join is
//! read again from its first fragment.

use std::collections::HashMap;
use std::sync::Arc;

use file_tailer::{Event, FileId};

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
}

struct FileState {
    meta: Arc<FileMeta>,
    pending: [Option<Pending>; 2],
}

/// Per-reader assembly state.
pub struct Assembler {
    files: HashMap<FileId, FileState>,
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

    #[allow(clippy::too_many_arguments)] // one call site per record kind, all fields differ
    fn record(
        &self,
        file: FileId,
        st: &FileState,
        end: u64,
        ts_ns: i64,
        stream: Option<Stream>,
        line: String,
        flags: u8,
    ) -> Record {
        let commit = Self::min_pending_start(st).map_or(end, |s| s.min(end));
        let guard = self.budget.take(line.len() + RECORD_OVERHEAD);
        Record {
            file,
            commit,
            ts_ns,
            stream,
            line,
            flags,
            meta: st.meta.clone(),
            read_ns: self.now_ns,
            guard,
        }
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
                self.metrics.bytes_read.add(l.end - l.start);
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
                        if p.partial || st.pending[idx].is_some() {
                            let max = self.max_joined;
                            let pend = st.pending[idx].get_or_insert_with(|| Pending {
                                buf: Vec::new(),
                                start: l.start,
                                ts_ns: p.ts_ns,
                                truncated: false,
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
                            if !p.partial {
                                if let Some(pend) = st.pending[idx].take() {
                                    let flags = if pend.truncated { FLAG_TRUNCATED } else { 0 };
                                    let r = self.record(
                                        l.file,
                                        &st,
                                        l.end,
                                        pend.ts_ns,
                                        Some(p.stream),
                                        lossy(&pend.buf),
                                        flags,
                                    );
                                    out.push(r);
                                }
                            }
                        } else {
                            let r = self.record(
                                l.file,
                                &st,
                                l.end,
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
                            l.file,
                            &st,
                            l.end,
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
                // Fragments whose final part never came: ship what there is, marked.
                for idx in 0..2 {
                    if let Some(p) = st.pending[idx].take() {
                        let stream = if idx == 0 {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        };
                        let flags =
                            FLAG_UNTERMINATED | if p.truncated { FLAG_TRUNCATED } else { 0 };
                        let r = self.record(
                            file,
                            &st,
                            offset,
                            p.ts_ns,
                            Some(stream),
                            lossy(&p.buf),
                            flags,
                        );
                        out.push(r);
                    }
                }
            }
        }
    }
}
