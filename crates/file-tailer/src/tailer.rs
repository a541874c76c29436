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
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::checkpoint::{Checkpointer, Entry};
use crate::fingerprint::fingerprint_path;
use crate::path::{ContainerInfo, FileKind, FileName, container_info, parse_file_name};
use crate::watch::Watch;

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
    pub last_checkpoint: Option<SystemTime>,
    pub inotify: bool,
}

enum Reader {
    Plain(File),
    Gz(Box<flate2::read::MultiGzDecoder<File>>),
}

impl Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(f) => f.read(buf),
            Reader::Gz(d) => d.read(buf),
        }
    }

    /// Opens `path` positioned at uncompressed offset `pos`.
    fn open(path: &Path, gz: bool, pos: u64) -> io::Result<Reader> {
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

/// Listing of one file in a container directory.
struct Listed {
    path: PathBuf,
    name: FileName,
    dev: u64,
    ino: u64,
    size: u64,
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
    /// (dev, ino, size) → fingerprint of untracked files (shadows, done files), to skip I/O.
    fp_cache: HashMap<(u64, u64, u64), u64>,
    dirty_dirs: HashSet<PathBuf>,
    queue: VecDeque<FileId>,
    queued: HashSet<FileId>,
    blocked: HashSet<FileId>,
    waiting: HashSet<FileId>,
    scratch: Vec<u8>,
    lost: u64,
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
            fp_cache: HashMap::new(),
            dirty_dirs: HashSet::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            blocked: HashSet::new(),
            waiting: HashSet::new(),
            scratch: Vec::new(),
            lost: 0,
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

    /// Maps a changed path to the container directory (or directories) to rescan.
    fn mark_path_dirty(&mut self, p: &Path) {
        let Ok(rel) = p.strip_prefix(&self.cfg.root) else {
            return;
        };
        let depth = rel.components().count();
        match depth {
            0 => self.queue_full_scan(),
            1 => self.scan_pod_dir(p),
            2 => {
                self.dirty_dirs.insert(p.to_path_buf());
            }
            3 => {
                if let Some(d) = p.parent() {
                    self.dirty_dirs.insert(d.to_path_buf());
                }
            }
            _ => {}
        }
    }

    fn queue_full_scan(&mut self) {
        self.last_reconcile = Instant::now();
        self.full_scan_dirs();
    }

    fn full_scan(&mut self) {
        self.full_scan_dirs();
        let dirs: Vec<PathBuf> = self.dirty_dirs.drain().collect();
        // Exact inode matches first so a copy never steals a checkpoint from its original.
        for d in dirs {
            self.scan_dir(&d);
        }
    }

    fn full_scan_dirs(&mut self) {
        let known: Vec<PathBuf> = self.containers.keys().cloned().collect();
        self.dirty_dirs.extend(known);
        let Ok(rd) = fs::read_dir(&self.cfg.root) else {
            tracing::warn!(root = %self.cfg.root.display(), "cannot list log root");
            return;
        };
        for e in rd.flatten() {
            self.scan_pod_dir(&e.path());
        }
    }

    fn scan_pod_dir(&mut self, pod_dir: &Path) {
        let known: Vec<PathBuf> = self
            .containers
            .keys()
            .filter(|k| k.parent() == Some(pod_dir))
            .cloned()
            .collect();
        self.dirty_dirs.extend(known);
        let Ok(rd) = fs::read_dir(pod_dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                self.dirty_dirs.insert(e.path());
            }
        }
    }

    fn list_dir(dir: &Path) -> Vec<Listed> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().and_then(parse_file_name) else {
                continue;
            };
            let path = e.path();
            let Ok(m) = fs::metadata(&path) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            out.push(Listed {
                path,
                name,
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
            });
        }
        out
    }

    /// Reconciles one container directory with the tracked state.
    fn scan_dir(&mut self, dir: &Path) {
        let Some(info) = container_info(dir) else {
            return;
        };
        let mut listed = Self::list_dir(dir);
        let max_restart = listed
            .iter()
            .filter(|l| l.name.kind == FileKind::Live)
            .map(|l| l.name.restart)
            .max();
        // Files we already know (or whose checkpoint names their inode) first.
        listed.sort_by_key(|l| {
            let exact = self.by_inode.contains_key(&(l.dev, l.ino))
                || self
                    .restored
                    .values()
                    .flatten()
                    .any(|e| e.dev == l.dev && e.ino == l.ino);
            (!exact, l.name.order_key())
        });
        let info = Arc::new(info);
        let mut seen: HashSet<FileId> = HashSet::new();
        let mut seen_fps: HashSet<u64> = HashSet::new();
        for l in &listed {
            let current = l.name.kind == FileKind::Live && Some(l.name.restart) == max_restart;
            if let Some(&id) = self.by_inode.get(&(l.dev, l.ino)) {
                if let Some(t) = self.tracked.get_mut(&id) {
                    seen.insert(id);
                    seen_fps.insert(t.fp);
                    let was_current = t.current;
                    t.path.clone_from(&l.path);
                    t.name = l.name.clone();
                    t.current = current;
                    if !t.gz {
                        t.size = t.size.max(l.size);
                    }
                    if was_current != current || l.size != t.pos {
                        self.enqueue(id);
                    }
                    continue;
                }
            }
            if let Some(id) = self.consider_new(dir, &info, l, current) {
                seen.insert(id);
            }
            if let Some(fp) = self.fp_cache.get(&(l.dev, l.ino, l.size)) {
                seen_fps.insert(*fp);
            }
        }
        // Tracked files of this directory that vanished: deleted but still open, keep reading.
        let ids = self.containers.get(dir).cloned().unwrap_or_default();
        for id in ids {
            if let Some(t) = self.tracked.get_mut(&id) {
                seen_fps.insert(t.fp);
                if !seen.contains(&id) && t.current {
                    t.current = false;
                    self.enqueue(id);
                }
            }
        }
        // Done entries whose file is gone from this directory can be forgotten.
        let before = self.done.len();
        self.done
            .retain(|fp, e| e.path.parent() != Some(dir) || seen_fps.contains(fp));
        if self.done.len() != before {
            self.checkpoint_dirty = true;
        }
        if listed.is_empty() && self.containers.get(dir).is_some_and(Vec::is_empty) {
            self.containers.remove(dir);
        }
    }

    /// Decides what to do with a file whose inode is not tracked. Returns the new id if tracked.
    fn consider_new(
        &mut self,
        dir: &Path,
        info: &Arc<ContainerInfo>,
        l: &Listed,
        current: bool,
    ) -> Option<FileId> {
        let gz = l.name.kind == FileKind::Gz;
        let key = (l.dev, l.ino, l.size);
        let fp = if let Some(fp) = self.fp_cache.get(&key) {
            *fp
        } else {
            match fingerprint_path(&l.path, gz) {
                Ok(Some(fp)) => fp,
                // Not a complete first line yet (or unreadable): look again on the next change.
                Ok(None) | Err(_) => return None,
            }
        };
        // A file still being read has this content: this one is a copy (or a detached file's
        // copy, which takes over).
        let holder = self
            .tracked
            .values()
            .find(|t| t.fp == fp && t.final_offset.is_none())
            .map(|t| (t.id, t.detached_since.is_some(), t.dir == dir));
        if let Some((id, detached, same_dir)) = holder {
            if detached && same_dir {
                self.adopt(id, l, gz);
                return Some(id);
            }
            self.fp_cache.insert(key, fp);
            return None;
        }
        if self.done.contains_key(&fp) || self.tracked.values().any(|t| t.fp == fp && t.dir == dir)
        {
            self.fp_cache.insert(key, fp);
            return None;
        }
        let mut start = 0;
        let mut committed = 0;
        if let Some(entries) = self.restored.get_mut(&fp) {
            let pick = entries
                .iter()
                .position(|e| e.dev == l.dev && e.ino == l.ino)
                .or_else(|| entries.iter().position(|e| e.path.parent() == Some(dir)));
            if let Some(i) = pick {
                let e = entries.swap_remove(i);
                if entries.is_empty() {
                    self.restored.remove(&fp);
                }
                if gz || l.size >= e.offset {
                    start = e.offset;
                    committed = e.offset;
                } else {
                    // Truncated while we were down: the unread tail is gone.
                    self.lost += e.size.saturating_sub(e.offset);
                }
            }
        }
        let reader = match Reader::open(&l.path, gz, start) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %l.path.display(), error = %e, "cannot open log file");
                return None;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let t = Tracked {
            id,
            dev: l.dev,
            ino: l.ino,
            fp,
            path: l.path.clone(),
            dir: dir.to_path_buf(),
            container: info.clone(),
            name: l.name.clone(),
            gz,
            reader: Some(reader),
            pos: start,
            carry: Vec::new(),
            committed,
            size: if gz { start } else { l.size },
            current,
            eof_since: None,
            final_offset: None,
            detached_since: None,
        };
        self.tracked.insert(id, t);
        self.by_inode.insert((l.dev, l.ino), id);
        self.containers
            .entry(dir.to_path_buf())
            .or_default()
            .push(id);
        self.pending_open.push(id);
        self.enqueue(id);
        self.checkpoint_dirty = true;
        Some(id)
    }

    /// Points a detached (truncated-away) file at its copy and continues where it was.
    fn adopt(&mut self, id: FileId, l: &Listed, gz: bool) {
        let Some(t) = self.tracked.get_mut(&id) else {
            return;
        };
        match Reader::open(&l.path, gz, t.pos) {
            Ok(r) => {
                t.reader = Some(r);
                t.detached_since = None;
                t.dev = l.dev;
                t.ino = l.ino;
                t.path.clone_from(&l.path);
                t.name = l.name.clone();
                t.gz = gz;
                t.current = false;
                if !gz {
                    t.size = l.size;
                }
                self.by_inode.insert((l.dev, l.ino), id);
                self.enqueue(id);
                tracing::info!(path = %l.path.display(), "continuing truncated file in its copy");
            }
            Err(e) => {
                tracing::warn!(path = %l.path.display(), error = %e, "cannot open copy");
            }
        }
    }

    fn emit_opened(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
        for id in std::mem::take(&mut self.pending_open) {
            if let Some(t) = self.tracked.get(&id) {
                sink(Event::Opened {
                    file: id,
                    container: t.container.clone(),
                    restart: t.name.restart,
                    path: &t.path,
                });
            }
        }
    }

    /// A file may be read only when every older file of its container reached its end.
    fn readable(&self, id: FileId) -> bool {
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
    fn read_file(
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
                if m.len() < t.pos || first_line_fp(f) != Some(t.fp) {
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
    fn finalize(&mut self, id: FileId, sink: &mut dyn FnMut(Event<'_>)) {
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

    /// Read to the end and acknowledged: forget it, remember its fingerprint as done.
    fn finish(&mut self, id: FileId) {
        let Some(t) = self.tracked.remove(&id) else {
            return;
        };
        self.waiting.remove(&id);
        self.blocked.remove(&id);
        if self.by_inode.get(&(t.dev, t.ino)) == Some(&id) {
            self.by_inode.remove(&(t.dev, t.ino));
        }
        if let Some(ids) = self.containers.get_mut(&t.dir) {
            ids.retain(|o| *o != id);
            for o in ids.clone() {
                if self.blocked.remove(&o) {
                    self.enqueue(o);
                }
            }
        }
        let mut e = t.entry();
        e.done = true;
        e.offset = t.pos;
        self.done.insert(t.fp, e);
        self.checkpoint_dirty = true;
        // Its directory may hold a copy to forget, or be empty now.
        self.dirty_dirs.insert(t.dir);
    }

    /// The file got shorter than what we read: copytruncate. The data read so far continues in
    /// the copy (same fingerprint, other inode) if there is one; the truncated file starts over
    /// as a new file.
    fn handle_truncation(&mut self, id: FileId) {
        let Some(t) = self.tracked.get_mut(&id) else {
            return;
        };
        tracing::info!(path = %t.path.display(), "file truncated (copytruncate)");
        t.reader = None;
        t.current = false;
        t.detached_since = Some(Instant::now());
        let dir = t.dir.clone();
        let key = (t.dev, t.ino);
        if self.by_inode.get(&key) == Some(&id) {
            self.by_inode.remove(&key);
        }
        self.fp_cache.retain(|k, _| (k.0, k.1) != key);
        self.scan_dir(&dir);
    }

    /// Detached files whose copy never showed up: count the rest as lost and let go.
    fn check_detached(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
        let timeout = self.cfg.detached_timeout;
        let expired: Vec<FileId> = self
            .tracked
            .values()
            .filter(|t| t.detached_since.is_some_and(|s| s.elapsed() >= timeout))
            .map(|t| t.id)
            .collect();
        for id in expired {
            if let Some(t) = self.tracked.get_mut(&id) {
                let lost = t.size.saturating_sub(t.pos);
                tracing::warn!(path = %t.path.display(), lost_bytes = lost,
                    "truncated file had no copy; unread bytes lost");
                self.lost += lost;
                t.detached_since = None;
            }
            self.finalize(id, sink);
        }
    }
}

/// Fingerprint of the file's current first line, read with `pread` (the read position stays).
fn first_line_fp(f: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; crate::fingerprint::FINGERPRINT_BYTES];
    let mut len = 0;
    while len < buf.len() {
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    crate::fingerprint::fingerprint_reader(&mut &buf[..len])
        .ok()
        .flatten()
}

fn reader_read(t: &mut Tracked, buf: &mut [u8]) -> io::Result<usize> {
    match t.reader.as_mut() {
        Some(r) => r.read(buf),
        None => Ok(0),
    }
}
