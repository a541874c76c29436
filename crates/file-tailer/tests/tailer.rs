//! Drives the real tailer against real files in a temp dir: appends, rename rotation + gzip,
//! copytruncate, restart from checkpoints, lost-byte accounting, inotify and polling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use file_tailer::{Config, Event, Tailer};

struct Harness {
    tailer: Tailer,
    lines: Vec<(u64, String)>,
    eofs: Vec<u64>,
    paths: HashMap<u64, PathBuf>,
    auto_ack: bool,
    acks: Vec<(u64, u64)>,
}

impl Harness {
    fn new(cfg: Config, auto_ack: bool) -> Self {
        let mut tailer = Tailer::new(cfg).unwrap();
        let mut h = Self {
            tailer: Tailer::new(Config::new("/", "/tmp")).unwrap(),
            lines: Vec::new(),
            eofs: Vec::new(),
            paths: HashMap::new(),
            auto_ack,
            acks: Vec::new(),
        };
        let mut evs = Vec::new();
        tailer.start(&mut |e| evs.push(own(e)));
        h.tailer = tailer;
        h.absorb(evs);
        h
    }

    fn absorb(&mut self, evs: Vec<Owned>) {
        for e in evs {
            match e {
                Owned::Opened(id, p) => {
                    self.paths.insert(id, p);
                }
                Owned::Line(id, end, s) => {
                    self.lines.push((id, s));
                    self.acks.push((id, end));
                }
                Owned::Eof(id) => self.eofs.push(id),
            }
        }
        if self.auto_ack {
            for (id, off) in std::mem::take(&mut self.acks) {
                self.tailer.ack(id, off);
            }
        }
    }

    fn pump(&mut self) {
        let mut evs = Vec::new();
        self.tailer.wait(Duration::from_millis(50));
        self.tailer.step(usize::MAX, &mut |e| evs.push(own(e)));
        self.absorb(evs);
    }

    fn until(&mut self, what: &str, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.pump();
        }
    }

    /// A few more rounds, so anything read twice would show.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.pump();
        }
    }

    fn texts(&self) -> Vec<String> {
        self.lines.iter().map(|(_, s)| s.clone()).collect()
    }
}

enum Owned {
    Opened(u64, PathBuf),
    Line(u64, u64, String),
    Eof(u64),
}

fn own(e: Event<'_>) -> Owned {
    match e {
        Event::Opened { file, path, .. } => Owned::Opened(file, path.to_path_buf()),
        Event::Line(l) => Owned::Line(l.file, l.end, String::from_utf8_lossy(l.data).into()),
        Event::Eof { file, .. } => Owned::Eof(file),
    }
}

/// A temp log root with one container log directory (`ns_<pod>_uid-<pod>/app`) and a state dir.
struct Setup {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    dir: PathBuf,
    live: PathBuf,
}

impl Setup {
    fn new(pod: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let dir = root.path().join(format!("ns_{pod}_uid-{pod}")).join("app");
        fs::create_dir_all(&dir).unwrap();
        let live = dir.join("0.log");
        Self {
            root,
            state,
            dir,
            live,
        }
    }

    fn cfg(&self, poll: bool) -> Config {
        let mut c = Config::new(self.root.path(), self.state.path());
        c.force_poll = poll;
        c.poll_interval = Duration::from_millis(50);
        c.rotate_grace = Duration::from_millis(200);
        c.detached_timeout = Duration::from_secs(3);
        c
    }

    /// A tailer (inotify) started on the root, as after a (re)start.
    fn harness(&self, auto_ack: bool) -> Harness {
        Harness::new(self.cfg(false), auto_ack)
    }

    /// A run that reads `n_read` lines, acknowledges the first `n_acked`, writes the checkpoint
    /// and stops; returns the lines it read.
    fn run_once(&self, n_read: usize, n_acked: usize) -> Vec<String> {
        let mut h = self.harness(false);
        h.until(&format!("{n_read} lines"), |h| h.lines.len() >= n_read);
        if let Some(&(id, off)) = n_acked.checked_sub(1).map(|i| &h.acks[i]) {
            h.tailer.ack(id, off);
        }
        h.tailer.checkpoint().unwrap();
        h.texts()
    }

    /// kubelet rotation: the live file renamed to `0.log.<stamp>`, which is returned.
    fn rotate(&self, stamp: &str) -> PathBuf {
        let rotated = self.dir.join(format!("0.log.{stamp}"));
        fs::rename(&self.live, &rotated).unwrap();
        rotated
    }

    /// Rotation, then the kubelet's gzip of the rotated file (which removes it).
    fn rotate_gzipped(&self, stamp: &str) {
        let rotated = self.rotate(stamp);
        gzip(&rotated, &self.dir.join(format!("0.log.{stamp}.gz")));
    }

    /// copytruncate: copy to `0.log.<stamp>`, then truncate the live file in place.
    fn copytruncate(&self, stamp: &str) {
        fs::copy(&self.live, self.dir.join(format!("0.log.{stamp}"))).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&self.live)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
}

fn append(p: &Path, lines: std::ops::Range<u32>, tag: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    for i in lines {
        writeln!(f, "{tag}-{i:06}").unwrap();
    }
    f.sync_all().unwrap();
}

fn expected(tag: &str, r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| format!("{tag}-{i:06}")).collect()
}

fn gzip(src: &Path, dst: &Path) {
    let data = fs::read(src).unwrap();
    let tmp = dst.with_extension("tmp");
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    fs::rename(&tmp, dst).unwrap();
    fs::remove_file(src).unwrap();
}

fn rename_rotation(poll: bool) {
    let t = Setup::new("p1");
    append(&t.live, 0..100, "a");
    let mut h = Harness::new(t.cfg(poll), true);
    h.until("first 100", |h| h.lines.len() >= 100);
    // kubelet rotation: rename, new file, later gzip of the rotated file.
    let r1 = t.rotate("20240101-000001");
    append(&r1, 100..110, "a"); // runtime writes a bit more before reopening
    append(&t.live, 110..200, "a");
    h.until("200 lines", |h| h.lines.len() >= 200);
    gzip(&r1, &t.dir.join("0.log.20240101-000001.gz"));
    t.rotate("20240101-000002");
    append(&t.live, 200..300, "a");
    h.until("300 lines", |h| h.lines.len() >= 300);
    h.settle(10);
    assert_eq!(h.texts(), expected("a", 0..300));
    assert!(h.eofs.len() >= 2, "rotated files let go: {:?}", h.eofs);
    h.tailer.checkpoint().unwrap();
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
    // The .gz of the first rotated file (lines 0..110, 9 bytes each) was recognised, not read.
    assert_eq!(h.tailer.stats().rotation_duplicate_bytes, 110 * 9);
}

#[test]
fn rename_rotation_and_gzip_inotify() {
    rename_rotation(false);
}

#[test]
fn rename_rotation_and_gzip_polling() {
    rename_rotation(true);
}

#[test]
fn copytruncate_loses_nothing() {
    let t = Setup::new("p2");
    append(&t.live, 0..50, "c");
    let mut h = t.harness(true);
    h.until("50", |h| h.lines.len() >= 50);
    append(&t.live, 50..80, "c");
    t.copytruncate("20240101-000001");
    append(&t.live, 80..120, "c");
    h.until("120", |h| h.lines.len() >= 120);
    h.settle(5);
    assert_eq!(h.texts(), expected("c", 0..120));
}

#[test]
fn restart_resumes_from_acked_offset_and_counts_lost() {
    let t = Setup::new("p3");
    append(&t.live, 0..100, "r");
    // Acknowledge only the first 40 lines.
    t.run_once(100, 40);
    append(&t.live, 100..120, "r");
    let mut h = t.harness(true);
    h.until("rest", |h| h.lines.len() >= 80);
    h.settle(5);
    assert_eq!(h.texts(), expected("r", 40..120));
    h.tailer.checkpoint().unwrap();
    drop(h);
    // Read 10 more lines without acknowledging them, then stop.
    append(&t.live, 120..130, "r");
    assert_eq!(t.run_once(10, 0), expected("r", 120..130));
    // Rotate while "down", and delete the rotated file unread: its unread bytes are lost.
    fs::remove_file(t.rotate("20240101-000009")).unwrap();
    append(&t.live, 0..5, "n");
    let mut h = t.harness(true);
    h.until("new", |h| h.lines.len() >= 5);
    assert_eq!(h.texts(), expected("n", 0..5));
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 10 * 9);
}

#[test]
fn restart_after_gzip_resumes_inside_gz() {
    let t = Setup::new("p4");
    append(&t.live, 0..100, "g");
    t.run_once(100, 60);
    t.rotate_gzipped("20240101-000001");
    append(&t.live, 100..150, "g");
    let mut h = t.harness(true);
    h.until("rest", |h| h.lines.len() >= 90);
    h.settle(5);
    assert_eq!(h.texts(), expected("g", 60..150));
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
    // The 60 acknowledged lines inside the .gz were skipped.
    assert_eq!(h.tailer.stats().rotation_duplicate_bytes, 60 * 9);
    h.tailer.checkpoint().unwrap();
    drop(h);
    // Down again: the live file is rotated and gzipped before the agent ever saw the rest of it
    // (and a new live file appears): the .gz is new content, read from its start... of what was
    // not acknowledged, and the never seen file in full.
    append(&t.live, 150..170, "g");
    t.rotate_gzipped("20240101-000002");
    append(&t.live, 0..30, "h");
    t.rotate_gzipped("20240101-000003");
    append(&t.live, 30..40, "h");
    let mut h = t.harness(true);
    h.until("after second restart", |h| h.lines.len() >= 60);
    h.settle(5);
    let mut want = expected("g", 150..170);
    want.extend(expected("h", 0..40));
    assert_eq!(h.texts(), want);
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
}

/// The kubelet gzips a rotated file while it is still being read (the reader is behind) and
/// removes the original: the rest is read through the open handle, the .gz is not read at all.
#[test]
fn gzip_while_reading_finishes_through_the_open_file() {
    let t = Setup::new("p6");
    append(&t.live, 0..2000, "w");
    let mut c = t.cfg(false);
    c.read_chunk = 4096;
    let mut h = Harness::new(c, true);
    // Read one chunk only.
    let mut evs = Vec::new();
    h.tailer.step(1024, &mut |e| evs.push(own(e)));
    h.absorb(evs);
    let read = h.lines.len();
    assert!(read > 0 && read < 2000, "read {read}");
    let r1 = t.rotate("20240101-000001");
    append(&t.live, 0..10, "x");
    gzip(&r1, &t.dir.join("0.log.20240101-000001.gz"));
    assert!(!r1.exists());
    h.until("all", |h| h.lines.len() >= 2010);
    h.settle(10);
    let mut want = expected("w", 0..2000);
    want.extend(expected("x", 0..10));
    assert_eq!(h.texts(), want);
    assert_eq!(h.tailer.stats().rotation_duplicate_bytes, 2000 * 9);
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
}

#[test]
fn partial_last_line_waits_for_newline() {
    let t = Setup::new("p5");
    fs::write(&t.live, b"first\nsecond-part").unwrap();
    let mut h = t.harness(true);
    h.until("first", |h| !h.lines.is_empty());
    h.settle(3);
    assert_eq!(h.texts(), vec!["first"]);
    let mut f = OpenOptions::new().append(true).open(&t.live).unwrap();
    f.write_all(b"-end\n").unwrap();
    h.until("second", |h| h.lines.len() >= 2);
    assert_eq!(h.texts(), vec!["first", "second-part-end"]);
}

/// copytruncate where the file is refilled past the old read position before the tailer looks:
/// the size check alone would miss it; the first-line fingerprint catches it.
#[test]
fn copytruncate_refilled_past_old_position_is_detected() {
    let t = Setup::new("p6");
    append(&t.live, 0..10, "a");
    // Polling with a long interval so the truncation and refill happen between two looks.
    let mut c = t.cfg(true);
    c.poll_interval = Duration::from_millis(50);
    let mut h = Harness::new(c, true);
    h.until("10", |h| h.lines.len() >= 10);
    t.copytruncate("20240101-000001");
    append(&t.live, 0..30, "b");
    h.until("30 more", |h| h.lines.len() >= 40);
    h.settle(5);
    let mut want = expected("a", 0..10);
    want.extend(expected("b", 0..30));
    assert_eq!(h.texts(), want);
}
