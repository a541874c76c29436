//! The tailer state machine: which files are tracked, where each one is read and acknowledged,
//! and what happens on rotation, truncation, deletion and restart.
//!
//! Identity: a tracked file is found again by device+inode while it exists, and by its content
//! fingerprint when it changes inode (copytruncate copy, kubelet gzip, restart after either).
//! A second file with the fingerprint of a file still being read is a duplicate ("shadow") and
//! is not shipped; it takes over only if the original is truncated away.
//!
//! Order: within one container directory files are read oldest first, and a newer file is not
//! read before every older one reached its final end, so lines leave in the order written.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::checkpoint::{Checkpointer, Entry};
use crate::path::{ContainerInfo, FileName};
use crate::watch::Watch;

mod read;
mod rotate;
mod scan;

use read::Reader;

/// (dev, ino, size, ctime ns) of a listed file: the fingerprint cache key.
type CacheKey = (u64, u64, u64, i64);

/// Identifies one tracked file for the lifetime of the process.
pub type FileId = u64;

/// Tailer settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pod logs root (kubelet `podLogsDir`).
    pub root: PathBuf,
    /// Directory for the checkpoint file.
    pub state_dir: PathBuf,
    /// Skip inotify and poll.
    pub force_poll: bool,
    /// Scan interval in polling mode, and the longest a `wait` blocks.
    pub poll_interval: Duration,
    /// Full reconciliation scan interval in inotify mode.
    pub reconcile_interval: Duration,
    /// How long a rotated file must stay at its end before it is let go (the runtime may still
    /// write a last line between the kubelet's rename and its reopen).
    pub rotate_grace: Duration,
    /// How long the data of a truncated file waits for its copy to appear before it is counted
    /// as lost.
    pub detached_timeout: Duration,
    /// Bytes per read call.
    pub read_chunk: usize,
    /// Longest raw line handed out; longer ones are split and marked truncated.
    pub max_line_bytes: usize,
}

impl Config {
    /// Defaults for a root and state dir.
    pub fn new(root: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            state_dir: state_dir.into(),
            force_poll: false,
            poll_interval: Duration::from_millis(250),
            reconcile_interval: Duration::from_secs(30),
            rotate_grace: Duration::from_millis(500),
            detached_timeout: Duration::from_secs(10),
            read_chunk: 64 * 1024,
            max_line_bytes: 512 * 1024,
        }
    }
}

/// A raw line (without its `\n`).
#[derive(Debug)]
pub struct Line<'a> {
    pub file: FileId,
    /// Offset of the first byte.
    pub start: u64,
    /// Offset after the line terminator: acknowledging this offset commits the line.
    pub end: u64,
    pub data: &'a [u8],
    /// The line was longer than `max_line_bytes` (this is one piece of it) or the file ended
    /// without a terminator.
    pub truncated: bool,
}

/// What the tailer reports while reading.
#[derive(Debug)]
pub enum Event<'a> {
    /// A file starts being tracked; lines of it follow.
    Opened {
        file: FileId,
        container: Arc<ContainerInfo>,
        restart: u32,
        path: &'a Path,
    },
    Line(Line<'a>),
    /// No more lines will come from this file; `offset` is its final end. Once acknowledged up
    /// to there the file is let go.
    Eof {
        file: FileId,
        offset: u64,
    },
}

/// Counters and gauges for metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub open_files: u64,
    pub tracked_files: u64,
    /// Bytes on disk not yet acknowledged.
    pub lag_bytes: u64,
    /// Bytes deleted (or truncated away) before they were read.
    pub rotation_lost_bytes: u64,
    /// Bytes of rotated copies (kubelet `.gz`, copytruncate copy) recognised as content already
    /// shipped or being read, and not read again.
    pub rotation_duplicate_bytes: u64,
    pub last_checkpoint: Option<SystemTime>,
    pub inotify: bool,
}

struct Tracked {
    id: FileId,
    dev: u64,
    ino: u64,
    fp: u64,
    path: PathBuf,
    dir: PathBuf,
    container: Arc<ContainerInfo>,
    name: FileName,
    gz: bool,
    reader: Option<Reader>,
    /// Bytes consumed from the reader (= offset of `carry`'s end).
    pos: u64,
    /// Bytes read past the last complete line.
    carry: Vec<u8>,
    committed: u64,
    size: u64,
    /// The container's current `<n>.log` (the runtime writes to it).
    current: bool,
    eof_since: Option<Instant>,
    final_offset: Option<u64>,
    detached_since: Option<Instant>,
}

impl Tracked {
    fn order_key(&self) -> (u32, bool, String) {
        let mut k = self.name.order_key();
        k.1 = self.current;
        k
    }

    fn entry(&self) -> Entry {
        Entry {
            fp: self.fp,
            dev: self.dev,
            ino: self.ino,
            path: self.path.clone(),
            offset: self.committed,
            size: self.size.max(self.pos),
            done: false,
        }
    }
}

/// The tailer. Single-threaded: the caller drives it with [`Tailer::step`] and
/// [`Tailer::wait`] and feeds back acknowledgements with [`Tailer::ack`].
pub struct Tailer {
    cfg: Config,
    watch: Watch,
    checkpointer: Checkpointer,
    next_id: FileId,
    tracked: HashMap<FileId, Tracked>,
    by_inode: HashMap<(u64, u64), FileId>,
    containers: HashMap<PathBuf, Vec<FileId>>,
    /// Checkpoint entries from the last run not yet matched to a file (startup only).
    restored: HashMap<u64, Vec<Entry>>,
    /// Files read to their end and acknowledged, by fingerprint.
    done: HashMap<u64, Entry>,
    /// Done entries whose file was missing from the last listing of its directory, and since.
    done_missing: HashMap<u64, Instant>,
    /// Fingerprints of untracked files (shadows, done files), to skip I/O.
    fp_cache: HashMap<CacheKey, u64>,
    dirty_dirs: HashSet<PathBuf>,
    queue: VecDeque<FileId>,
    queued: HashSet<FileId>,
    blocked: HashSet<FileId>,
    waiting: HashSet<FileId>,
    scratch: Vec<u8>,
    lost: u64,
    duplicate: u64,
    last_checkpoint: Option<SystemTime>,
    checkpoint_dirty: bool,
    last_reconcile: Instant,
    pending_open: Vec<FileId>,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("root", &self.cfg.root)
            .field("tracked", &self.tracked.len())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::Io(path.to_path_buf(), e)
}

impl Tailer {
    /// Loads checkpoints and sets up the watch. Call [`Tailer::start`] next.
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let checkpointer = Checkpointer::new(&cfg.state_dir)?;
        let mut restored: HashMap<u64, Vec<Entry>> = HashMap::new();
        let mut done = HashMap::new();
        for e in checkpointer.load()? {
            if e.done {
                done.insert(e.fp, e);
            } else {
                restored.entry(e.fp).or_default().push(e);
            }
        }
        fs::metadata(&cfg.root).map_err(io_err(&cfg.root))?;
        let watch = Watch::new(&cfg.root, cfg.force_poll);
        Ok(Self {
            watch,
            checkpointer,
            next_id: 1,
            tracked: HashMap::new(),
            by_inode: HashMap::new(),
            containers: HashMap::new(),
            restored,
            done,
            done_missing: HashMap::new(),
            fp_cache: HashMap::new(),
            dirty_dirs: HashSet::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            blocked: HashSet::new(),
            waiting: HashSet::new(),
            scratch: Vec::new(),
            lost: 0,
            duplicate: 0,
            last_checkpoint: None,
            checkpoint_dirty: true,
            last_reconcile: Instant::now(),
            pending_open: Vec::new(),
            cfg,
        })
    }

    /// Initial full scan. Checkpointed files that no longer exist are counted as lost (the part
    /// that was never acknowledged).
    pub fn start(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
        self.full_scan();
        self.emit_opened(sink);
        for (_, entries) in self.restored.drain() {
            for e in entries {
                let lost = e.size.saturating_sub(e.offset);
                if lost > 0 {
                    tracing::warn!(path = %e.path.display(), lost_bytes = lost,
                        "checkpointed file vanished before it was fully read");
                }
                self.lost += lost;
            }
        }
        self.checkpoint_dirty = true;
    }

    /// Statistics for metrics.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            rotation_lost_bytes: self.lost,
            rotation_duplicate_bytes: self.duplicate,
            last_checkpoint: self.last_checkpoint,
            inotify: self.watch.is_inotify(),
            tracked_files: self.tracked.len() as u64,
            ..Stats::default()
        };
        for t in self.tracked.values() {
            if t.reader.is_some() {
                s.open_files += 1;
            }
            s.lag_bytes += t.size.max(t.pos).saturating_sub(t.committed);
        }
        s
    }

    /// Pod UIDs that still have files being read or awaiting acknowledgement.
    pub fn tracked_uids(&self) -> HashSet<String> {
        self.tracked
            .values()
            .map(|t| t.container.uid.clone())
            .collect()
    }

    /// Whether reading work is queued (the caller should not block in `wait`).
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.dirty_dirs.is_empty()
    }

    /// Blocks up to `timeout` for file system changes and queues the work they imply.
    pub fn wait(&mut self, timeout: Duration) {
        let timeout = if self.waiting.is_empty() {
            timeout
        } else {
            timeout.min(self.cfg.rotate_grace / 2)
        };
        let timeout = if self.watch.is_inotify() {
            timeout
        } else {
            timeout.min(self.cfg.poll_interval)
        };
        let changes = self.watch.wait(timeout);
        self.apply(changes);
    }

    /// Applies queued change notifications without blocking (the queue stays bounded by the
    /// number of files, which the dirty sets deduplicate, even while reading is paused).
    pub fn drain_changes(&mut self) {
        let changes = self.watch.drain();
        self.apply(changes);
    }

    fn apply(&mut self, changes: crate::watch::Changes) {
        if changes.rescan {
            self.queue_full_scan();
        }
        for p in changes.modified {
            if let Some(id) = self.id_for_path(&p) {
                self.enqueue(id);
            } else {
                self.mark_path_dirty(&p);
            }
        }
        for p in changes.structural {
            self.mark_path_dirty(&p);
        }
    }

    /// Acknowledges everything before `offset` in `file`.
    pub fn ack(&mut self, file: FileId, offset: u64) {
        let Some(t) = self.tracked.get_mut(&file) else {
            return;
        };
        if offset > t.committed {
            t.committed = offset;
            self.checkpoint_dirty = true;
        }
        if let Some(fin) = t.final_offset
            && t.committed >= fin
        {
            self.finish(file);
        }
    }

    /// Writes the checkpoint file if anything changed since the last write.
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        if !self.checkpoint_dirty {
            return Ok(());
        }
        let mut entries: Vec<Entry> = self.tracked.values().map(Tracked::entry).collect();
        entries.extend(self.done.values().cloned());
        entries.extend(self.restored.values().flatten().cloned());
        self.checkpointer.store(entries)?;
        self.checkpoint_dirty = false;
        self.last_checkpoint = Some(SystemTime::now());
        Ok(())
    }

    /// Does queued work: rescans dirty directories, reads queued files up to `budget` bytes,
    /// lets go of rotated files that stayed at their end for the grace period. Returns the
    /// number of bytes read.
    pub fn step(&mut self, budget: usize, sink: &mut dyn FnMut(Event<'_>)) -> usize {
        if self.watch.is_inotify() && self.last_reconcile.elapsed() >= self.cfg.reconcile_interval {
            self.queue_full_scan();
        }
        if !self.dirty_dirs.is_empty() {
            let dirs: Vec<PathBuf> = self.dirty_dirs.drain().collect();
            for d in dirs {
                self.scan_dir(&d);
            }
        }
        self.emit_opened(sink);
        self.check_detached(sink);
        let waiting: Vec<FileId> = self.waiting.iter().copied().collect();
        for id in waiting {
            self.enqueue(id);
        }
        let mut total = 0;
        let rounds = self.queue.len();
        for _ in 0..rounds {
            if total >= budget {
                break;
            }
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&id);
            if !self.tracked.contains_key(&id) {
                continue;
            }
            if !self.readable(id) {
                self.blocked.insert(id);
                continue;
            }
            let (n, more) = self.read_file(id, budget - total, sink);
            total += n;
            if more {
                self.enqueue(id);
            }
        }
        self.emit_opened(sink);
        total
    }

    fn enqueue(&mut self, id: FileId) {
        if self.queued.insert(id) {
            self.queue.push_back(id);
        }
    }

    fn id_for_path(&self, p: &Path) -> Option<FileId> {
        let dir = p.parent()?;
        let ids = self.containers.get(dir)?;
        ids.iter()
            .copied()
            .find(|id| self.tracked.get(id).is_some_and(|t| t.path == p))
    }
}
