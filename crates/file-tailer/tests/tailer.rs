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

fn container(root: &Path, pod: &str, c: &str) -> PathBuf {
    let d = root.join(format!("ns_{pod}_uid-{pod}")).join(c);
    fs::create_dir_all(&d).unwrap();
    d
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

fn cfg(root: &Path, state: &Path, poll: bool) -> Config {
    let mut c = Config::new(root, state);
    c.force_poll = poll;
    c.poll_interval = Duration::from_millis(50);
    c.rotate_grace = Duration::from_millis(200);
    c.detached_timeout = Duration::from_secs(3);
    c
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
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p1", "app");
    let live = d.join("0.log");
    append(&live, 0..100, "a");
    let mut h = Harness::new(cfg(root.path(), state.path(), poll), true);
    h.until("first 100", |h| h.lines.len() >= 100);
    // kubelet rotation: rename, new file, later gzip of the rotated file.
    let r1 = d.join("0.log.20240101-000001");
    fs::rename(&live, &r1).unwrap();
    append(&r1, 100..110, "a"); // runtime writes a bit more before reopening
    append(&live, 110..200, "a");
    h.until("200 lines", |h| h.lines.len() >= 200);
    gzip(&r1, &d.join("0.log.20240101-000001.gz"));
    let r2 = d.join("0.log.20240101-000002");
    fs::rename(&live, &r2).unwrap();
    append(&live, 200..300, "a");
    h.until("300 lines", |h| h.lines.len() >= 300);
    for _ in 0..10 {
        h.pump();
    }
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
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p2", "app");
    let live = d.join("0.log");
    append(&live, 0..50, "c");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("50", |h| h.lines.len() >= 50);
    append(&live, 50..80, "c");
    // copytruncate: copy, then truncate in place.
    fs::copy(&live, d.join("0.log.20240101-000001")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, 80..120, "c");
    h.until("120", |h| h.lines.len() >= 120);
    for _ in 0..5 {
        h.pump();
    }
    assert_eq!(h.texts(), expected("c", 0..120));
}

#[test]
fn restart_resumes_from_acked_offset_and_counts_lost() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p3", "app");
    let live = d.join("0.log");
    append(&live, 0..100, "r");
    {
        let mut h = Harness::new(cfg(root.path(), state.path(), false), false);
        h.until("100", |h| h.lines.len() >= 100);
        // Acknowledge only the first 40 lines.
        let (id, off) = h.acks[39];
        h.tailer.ack(id, off);
        h.tailer.checkpoint().unwrap();
    }
    append(&live, 100..120, "r");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("rest", |h| h.lines.len() >= 80);
    for _ in 0..5 {
        h.pump();
    }
    assert_eq!(h.texts(), expected("r", 40..120));
    h.tailer.checkpoint().unwrap();
    drop(h);
    // Read 10 more lines without acknowledging them, then stop.
    append(&live, 120..130, "r");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), false);
    h.until("10 more", |h| h.lines.len() >= 10);
    assert_eq!(h.texts(), expected("r", 120..130));
    h.tailer.checkpoint().unwrap();
    drop(h);
    // Rotate while "down", and delete the rotated file unread: its unread bytes are lost.
    let rotated = d.join("0.log.20240101-000009");
    fs::rename(&live, &rotated).unwrap();
    fs::remove_file(&rotated).unwrap();
    append(&live, 0..5, "n");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("new", |h| h.lines.len() >= 5);
    assert_eq!(h.texts(), expected("n", 0..5));
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 10 * 9);
}

#[test]
fn restart_after_gzip_resumes_inside_gz() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p4", "app");
    let live = d.join("0.log");
    append(&live, 0..100, "g");
    {
        let mut h = Harness::new(cfg(root.path(), state.path(), false), false);
        h.until("100", |h| h.lines.len() >= 100);
        let (id, off) = h.acks[59];
        h.tailer.ack(id, off);
        h.tailer.checkpoint().unwrap();
    }
    let r1 = d.join("0.log.20240101-000001");
    fs::rename(&live, &r1).unwrap();
    gzip(&r1, &d.join("0.log.20240101-000001.gz"));
    append(&live, 100..150, "g");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("rest", |h| h.lines.len() >= 90);
    for _ in 0..5 {
        h.pump();
    }
    assert_eq!(h.texts(), expected("g", 60..150));
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
    // The 60 acknowledged lines inside the .gz were skipped.
    assert_eq!(h.tailer.stats().rotation_duplicate_bytes, 60 * 9);
    h.tailer.checkpoint().unwrap();
    drop(h);
    // Down again: the live file is rotated and gzipped before the agent ever saw the rest of it
    // (and a new live file appears): the .gz is new content, read from its start... of what was
    // not acknowledged, and the never seen file in full.
    append(&live, 150..170, "g");
    let r2 = d.join("0.log.20240101-000002");
    fs::rename(&live, &r2).unwrap();
    gzip(&r2, &d.join("0.log.20240101-000002.gz"));
    append(&live, 0..30, "h");
    let r3 = d.join("0.log.20240101-000003");
    fs::rename(&live, &r3).unwrap();
    gzip(&r3, &d.join("0.log.20240101-000003.gz"));
    append(&live, 30..40, "h");
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("after second restart", |h| h.lines.len() >= 60);
    for _ in 0..5 {
        h.pump();
    }
    let mut want = expected("g", 150..170);
    want.extend(expected("h", 0..40));
    assert_eq!(h.texts(), want);
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
}

/// The kubelet gzips a rotated file while it is still being read (the reader is behind) and
/// removes the original: the rest is read through the open handle, the .gz is not read at all.
#[test]
fn gzip_while_reading_finishes_through_the_open_file() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p6", "app");
    let live = d.join("0.log");
    append(&live, 0..2000, "w");
    let mut c = cfg(root.path(), state.path(), false);
    c.read_chunk = 4096;
    let mut h = Harness::new(c, true);
    // Read one chunk only.
    let mut evs = Vec::new();
    h.tailer.step(1024, &mut |e| evs.push(own(e)));
    h.absorb(evs);
    let read = h.lines.len();
    assert!(read > 0 && read < 2000, "read {read}");
    let r1 = d.join("0.log.20240101-000001");
    fs::rename(&live, &r1).unwrap();
    append(&live, 0..10, "x");
    gzip(&r1, &d.join("0.log.20240101-000001.gz"));
    assert!(!r1.exists());
    h.until("all", |h| h.lines.len() >= 2010);
    for _ in 0..10 {
        h.pump();
    }
    let mut want = expected("w", 0..2000);
    want.extend(expected("x", 0..10));
    assert_eq!(h.texts(), want);
    assert_eq!(h.tailer.stats().rotation_duplicate_bytes, 2000 * 9);
    assert_eq!(h.tailer.stats().rotation_lost_bytes, 0);
}

#[test]
fn partial_last_line_waits_for_newline() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p5", "app");
    let live = d.join("0.log");
    fs::write(&live, b"first\nsecond-part").unwrap();
    let mut h = Harness::new(cfg(root.path(), state.path(), false), true);
    h.until("first", |h| !h.lines.is_empty());
    for _ in 0..3 {
        h.pump();
    }
    assert_eq!(h.texts(), vec!["first"]);
    let mut f = OpenOptions::new().append(true).open(&live).unwrap();
    f.write_all(b"-end\n").unwrap();
    h.until("second", |h| h.lines.len() >= 2);
    assert_eq!(h.texts(), vec!["first", "second-part-end"]);
}

/// copytruncate where the file is refilled past the old read position before the tailer looks:
/// the size check alone would miss it; the first-line fingerprint catches it.
#[test]
fn copytruncate_refilled_past_old_position_is_detected() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = container(root.path(), "p6", "app");
    let live = d.join("0.log");
    append(&live, 0..10, "a");
    // Polling with a long interval so the truncation and refill happen between two looks.
    let mut c = cfg(root.path(), state.path(), true);
    c.poll_interval = Duration::from_millis(50);
    let mut h = Harness::new(c, true);
    h.until("10", |h| h.lines.len() >= 10);
    fs::copy(&live, d.join("0.log.20240101-000001")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, 0..30, "b");
    h.until("30 more", |h| h.lines.len() >= 40);
    for _ in 0..5 {
        h.pump();
    }
    let mut want = expected("a", 0..10);
    want.extend(expected("b", 0..30));
    assert_eq!(h.texts(), want);
}
