//! Kubelet rotation under load (issue 22): 24 containers write CRI lines live at 5,000 lines/s
//! in total while a rotator does exactly what the kubelet's container log manager does at
//! 256 KiB (delete rotated files beyond the newest 3, gzip every uncompressed rotated file via
//! `NAME.tmp` → `NAME.gz` and remove the original, rename `0.log` to `0.log.<stamp>`, reopen).
//! 5 % of the lines are split into a `P` and an `F` fragment, sometimes with a line of the other
//! stream between, and every other rotation of a container falls between a `P` and its `F`.
//! The real agent binary ships to an in-test Loki sink that decodes the snappy protobuf push and
//! checks every entry against the exact text expected for its sequence number: missing,
//! duplicated and unjoined (a fragment shipped on its own) are counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    // The kubelet writes these suffixes in lower case only.
    clippy::case_sensitive_file_extension_comparisons
)]

mod common;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use outrigger_agent::proto::logproto::PushRequest;
use prost::Message as _;

use common::{Agent, http1_conn, rfc3339_at, rfc3339_now, serve_in_thread, wait_for};

const CONTAINERS: usize = 24;
const LINES: u64 = 300_000;
const LINES_PER_SEC: u64 = 5_000;
const ROTATE_AT: u64 = 256 * 1024;
/// Rotated files the kubelet keeps (`containerLogMaxFiles` 5 minus the live and the one being
/// rotated).
const KEEP_ROTATED: usize = 3;
const BATCH_MAX_BYTES: usize = 64 * 1024;
const MAX_BUFFER_BYTES: usize = 256 * 1024;
/// The tailer's read chunk: a read may overshoot the buffer bound by this much.
const READ_CHUNK: usize = 64 * 1024;

fn stream_name(err: bool) -> &'static str {
    if err { "stderr" } else { "stdout" }
}

/// The exact message of logical line `seq` of container `c` (about 160 bytes, so about 200 with
/// the CRI prefix); a pure function so the sink can check every entry byte for byte.
fn message(c: usize, seq: u64, err: bool) -> String {
    let h = (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ c as u64) >> 40;
    let pad = 130 + (h % 40) as usize;
    let fill = (b'a' + (h % 26) as u8) as char;
    format!(
        "c{c:02} s{seq:07} {} {}",
        stream_name(err),
        fill.to_string().repeat(pad)
    )
}

/// Whether logical line `seq` is written on stderr (one in five).
fn is_err(c: usize, seq: u64) -> bool {
    (seq + c as u64) % 5 == 0
}

/// What the sink saw, per container and sequence number.
#[derive(Default)]
struct Tally {
    counts: Vec<Vec<u16>>,
    /// Entries that are not exactly one expected line (fragments shipped alone, garbage).
    unjoined: Vec<String>,
    /// Per (container, stream): the last sequence number received, for the order check.
    last: HashMap<(usize, bool), u64>,
    out_of_order: usize,
    entries: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            counts: vec![Vec::new(); CONTAINERS],
            ..Self::default()
        }
    }

    fn record(&mut self, container: &str, stream: &str, line: &str) {
        self.entries += 1;
        let parsed = (|| {
            let c: usize = container.strip_prefix('c')?.parse().ok()?;
            let seq: u64 = line.get(5..12)?.parse().ok()?;
            let err = stream == "stderr";
            (c < CONTAINERS && line == message(c, seq, err) && is_err(c, seq) == err)
                .then_some((c, seq, err))
        })();
        let Some((c, seq, err)) = parsed else {
            self.unjoined.push(format!("{container}/{stream}: {line}"));
            return;
        };
        let v = &mut self.counts[c];
        if v.len() <= seq as usize {
            v.resize(seq as usize + 1, 0);
        }
        v[seq as usize] += 1;
        let last = self.last.entry((c, err)).or_insert(0);
        // A repeat after a crash goes back in the sequence; only a first delivery out of order
        // is a reordering.
        if seq < *last && v[seq as usize] == 1 {
            self.out_of_order += 1;
        }
        *last = (*last).max(seq);
    }
}

/// A Loki push endpoint that decodes snappy protobuf `PushRequest`s and tallies the entries.
struct LokiSink {
    addr: SocketAddr,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LokiSink {
    fn start() -> Self {
        let tally = Arc::new(Mutex::new(Tally::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let t = tally.clone();
        let (addr, thread) = serve_in_thread(stop.clone(), move |conn| {
            let t = t.clone();
            http1_conn(conn, move |req| {
                let t = t.clone();
                async move { push(req, &t).await }
            })
        });
        Self {
            addr,
            tally,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    fn entries(&self) -> u64 {
        self.tally.lock().unwrap().entries
    }

    /// Distinct logical lines received at least once.
    fn distinct(&self) -> u64 {
        let t = self.tally.lock().unwrap();
        t.counts.iter().flatten().filter(|n| **n > 0).count() as u64
    }
}

impl Drop for LokiSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn push(req: Request<hyper::body::Incoming>, tally: &Mutex<Tally>) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("snappy block format");
    let pr = PushRequest::decode(raw.as_slice()).expect("logproto.PushRequest");
    let mut t = tally.lock().unwrap();
    for s in pr.streams {
        let label = |k: &str| {
            let pat = format!("{k}=\"");
            let from = s.labels.find(&pat)? + pat.len();
            let len = s.labels[from..].find('"')?;
            Some(s.labels[from..from + len].to_owned())
        };
        let container = label("container").unwrap_or_default();
        let stream = label("stream").unwrap_or_default();
        for e in s.entries {
            t.record(&container, &stream, &e.line);
        }
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::NO_CONTENT;
    r
}

/// One container: the runtime's open `0.log` and the kubelet's view of its rotated files.
struct Writer {
    dir: PathBuf,
    file: File,
    size: u64,
    next_seq: u64,
    rotations: u64,
    last_stamp: u64,
}

fn open_live(dir: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("0.log"))
        .unwrap()
}

/// `YYYYMMDD-HHMMSS` of a Unix time, as the kubelet names rotated files.
fn stamp(secs: u64) -> String {
    let t = rfc3339_at(Duration::from_secs(secs));
    format!(
        "{}{}{}-{}{}{}",
        &t[0..4],
        &t[5..7],
        &t[8..10],
        &t[11..13],
        &t[14..16],
        &t[17..19]
    )
}

impl Writer {
    fn new(root: &Path, c: usize) -> Self {
        let dir = root
            .join(format!("rot_p{c:02}_uid-p{c:02}"))
            .join(format!("c{c:02}"));
        fs::create_dir_all(&dir).unwrap();
        let file = open_live(&dir);
        Self {
            dir,
            file,
            size: 0,
            next_seq: 0,
            rotations: 0,
            last_stamp: 0,
        }
    }

    fn put(&mut self, err: bool, tag: char, msg: &str) {
        let line = format!("{} {} {tag} {msg}\n", rfc3339_now(), stream_name(err));
        self.file.write_all(line.as_bytes()).unwrap();
        self.size += line.len() as u64;
    }

    /// The kubelet's `rotateLog`: remove rotated files beyond the newest `KEEP_ROTATED`, compress
    /// every uncompressed one, then rename the live file and let the runtime reopen it.
    fn rotate(&mut self) {
        let mut rotated: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("0.log.") && !n.ends_with(".tmp"))
            .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(KEEP_ROTATED);
        for n in rotated.drain(..excess) {
            fs::remove_file(self.dir.join(n)).unwrap();
        }
        for n in rotated.iter().filter(|n| !n.ends_with(".gz")) {
            let src = self.dir.join(n);
            let tmp = self.dir.join(format!("{n}.tmp"));
            let data = fs::read(&src).unwrap();
            let mut enc = flate2::write::GzEncoder::new(
                File::create(&tmp).unwrap(),
                flate2::Compression::default(),
            );
            enc.write_all(&data).unwrap();
            enc.finish().unwrap().sync_all().unwrap();
            fs::rename(&tmp, self.dir.join(format!("{n}.gz"))).unwrap();
            fs::remove_file(&src).unwrap();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Stamps have one-second resolution; keep them distinct and increasing as the
        // kubelet's (at most one rotation per container per monitor period) are.
        self.last_stamp = now.max(self.last_stamp + 1);
        fs::rename(
            self.dir.join("0.log"),
            self.dir.join(format!("0.log.{}", stamp(self.last_stamp))),
        )
        .unwrap();
        self.file = open_live(&self.dir);
        self.size = 0;
        self.rotations += 1;
    }

    /// Writes the next logical line (and, for a split one, whatever falls between its
    /// fragments). Returns the number of logical lines written.
    fn step(&mut self, c: usize, rng: &mut fastrand::Rng) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let err = is_err(c, seq);
        let msg = message(c, seq, err);
        let full = self.size >= ROTATE_AT;
        // Every other rotation cuts a P/F pair; otherwise 5 % of lines are split.
        let split_rotation = full && self.rotations % 2 == 0;
        if !split_rotation && rng.u8(..100) >= 5 {
            if full {
                self.rotate();
            }
            self.put(err, 'F', &msg);
            return 1;
        }
        let cut = rng.usize(1..msg.len());
        self.put(err, 'P', &msg[..cut]);
        if full {
            self.rotate();
        }
        let mut n = 1;
        if rng.u8(..3) == 0 {
            // A line of the other stream between the fragments.
            let seq2 = self.next_seq;
            if is_err(c, seq2) != err {
                self.next_seq += 1;
                self.put(!err, 'F', &message(c, seq2, !err));
                n += 1;
            }
        }
        self.put(err, 'F', &msg[cut..]);
        n
    }
}

struct Progress {
    written: AtomicU64,
    rotations: Vec<AtomicU64>,
}

/// Writes `LINES` logical lines at `LINES_PER_SEC` round robin over the containers, rotating
/// like the kubelet. The pace is a load profile, not a synchronisation.
fn run_writers(root: &Path, progress: &Progress) -> Vec<u64> {
    let mut ws: Vec<Writer> = (0..CONTAINERS).map(|c| Writer::new(root, c)).collect();
    let mut rng = fastrand::Rng::with_seed(22);
    let start = Instant::now();
    let mut written = 0u64;
    let mut c = 0;
    while written < LINES {
        let due = start.elapsed().as_micros() as u64 * LINES_PER_SEC / 1_000_000;
        if written >= due {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        while written < due.min(LINES) {
            let before = ws[c].rotations;
            written += ws[c].step(c, &mut rng);
            if ws[c].rotations != before {
                progress.rotations[c].store(ws[c].rotations, Ordering::Relaxed);
            }
            c = (c + 1) % CONTAINERS;
        }
        progress.written.store(written, Ordering::Relaxed);
    }
    progress.written.store(written, Ordering::Relaxed);
    ws.iter().map(|w| w.next_seq).collect()
}

fn spawn_agent(root: &Path, state: &Path, sink: &LokiSink) -> Agent {
    Agent::spawn(
        root,
        state,
        &[
            "--loki-url",
            &sink.url(),
            "--batch-max-bytes",
            &BATCH_MAX_BYTES.to_string(),
            "--max-buffer-bytes",
            &MAX_BUFFER_BYTES.to_string(),
        ],
    )
}

struct Outcome {
    missing: u64,
    duplicated: u64,
    unjoined: Vec<String>,
    out_of_order: usize,
    entries: u64,
    lines: u64,
}

impl Outcome {
    fn summary(&self) -> String {
        format!(
            "{} lines, {} entries; missing {}, duplicated {}, unjoined {}, out of order {}",
            self.lines,
            self.entries,
            self.missing,
            self.duplicated,
            self.unjoined.len(),
            self.out_of_order
        )
    }

    fn assert_nothing_lost_or_split(&self) {
        assert_eq!(self.missing, 0, "missing lines");
        assert!(
            self.unjoined.is_empty(),
            "unjoined: {:?}",
            &self.unjoined[..self.unjoined.len().min(5)]
        );
        assert_eq!(self.out_of_order, 0, "reordered within a stream");
    }
}

/// Waits until every logical line arrived (bounded: a hang guard), then lets the agent go idle
/// and counts.
fn settle(sink: &LokiSink, agent: &Agent, per_container: &[u64]) -> Outcome {
    let lines: u64 = per_container.iter().sum();
    // A hang guard only: on expiry the counts below say what is missing.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.distinct() < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more may come: the agent has nothing left unacknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.metric("outrigger_agent_lag_bytes") != Some(0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let entries = sink.entries();
    wait_for("sink quiet", 30, || {
        std::thread::sleep(Duration::from_millis(500));
        sink.entries() == entries
    });
    let t = sink.tally.lock().unwrap();
    let mut missing = 0;
    let mut duplicated = 0;
    for (c, want) in per_container.iter().enumerate() {
        for seq in 0..*want {
            match t.counts[c].get(seq as usize).copied().unwrap_or(0) {
                0 => missing += 1,
                n => duplicated += u64::from(n - 1),
            }
        }
        let gone: Vec<u64> = (0..*want)
            .filter(|s| t.counts[c].get(*s as usize).copied().unwrap_or(0) == 0)
            .collect();
        let twice: Vec<u64> = (0..*want)
            .filter(|s| t.counts[c].get(*s as usize).copied().unwrap_or(0) > 1)
            .collect();
        if let (Some(a), Some(b)) = (twice.first(), twice.last()) {
            eprintln!("c{c:02}: {} duplicated, seq {a}..={b}", twice.len());
        }
        if !gone.is_empty() {
            eprintln!(
                "c{c:02}: {} missing, first {:?}",
                gone.len(),
                &gone[..gone.len().min(10)]
            );
        }
        duplicated += t.counts[c]
            .iter()
            .skip(*want as usize)
            .map(|n| u64::from(*n))
            .sum::<u64>();
    }
    Outcome {
        missing,
        duplicated,
        unjoined: t.unjoined.clone(),
        out_of_order: t.out_of_order,
        entries: t.entries,
        lines,
    }
}

#[test]
fn kubelet_rotation_with_gzip_ships_every_line_once_and_joined() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = LokiSink::start();
    let agent = spawn_agent(root.path(), state.path(), &sink);
    let progress = Progress {
        written: AtomicU64::new(0),
        rotations: (0..CONTAINERS).map(|_| AtomicU64::new(0)).collect(),
    };
    let per_container = run_writers(root.path(), &progress);
    let o = settle(&sink, &agent, &per_container);
    let skipped = agent
        .metric("outrigger_agent_rotation_duplicate_bytes_total")
        .unwrap_or(-1.0);
    let rotations: u64 = progress
        .rotations
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "rotation: {}, {rotations} rotations; rotation_duplicate_bytes_total {skipped}",
        o.summary()
    );
    assert!(rotations >= 200, "the run must rotate: {rotations}");
    if o.missing + o.duplicated > 0 || !o.unjoined.is_empty() {
        let log = agent.log();
        let warn: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("INFO"))
            .take(20)
            .collect();
        eprintln!("agent log (not INFO):\n{}", warn.join("\n"));
    }
    assert_eq!(o.duplicated, 0, "duplicated lines");
    o.assert_nothing_lost_or_split();
    // Every gzip of an already shipped file was recognised and skipped.
    assert!(skipped > 0.0, "rotation_duplicate_bytes_total {skipped}");
}

#[test]
fn kubelet_rotation_with_sigkill_in_the_middle_loses_and_splits_nothing() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = LokiSink::start();
    let progress = Arc::new(Progress {
        written: AtomicU64::new(0),
        rotations: (0..CONTAINERS).map(|_| AtomicU64::new(0)).collect(),
    });
    let writer = {
        let (root, progress) = (root.path().to_path_buf(), progress.clone());
        std::thread::spawn(move || run_writers(&root, &progress))
    };
    let agent = spawn_agent(root.path(), state.path(), &sink);
    wait_for("a third of the lines written", 120, || {
        progress.written.load(Ordering::Relaxed) >= LINES / 3
    });
    agent.kill9();
    // Down until some containers rotated twice, so a file is renamed and gzipped (and a new one
    // rotated and gzipped) while nobody watches.
    let at_kill: Vec<u64> = progress
        .rotations
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .collect();
    wait_for("two rotations while the agent is down", 60, || {
        progress
            .rotations
            .iter()
            .zip(&at_kill)
            .filter(|(r, k)| r.load(Ordering::Relaxed) >= *k + 2)
            .count()
            >= 4
    });
    let agent = spawn_agent(root.path(), state.path(), &sink);
    let per_container = writer.join().unwrap();
    let o = settle(&sink, &agent, &per_container);
    eprintln!("rotation + kill -9: {}", o.summary());
    o.assert_nothing_lost_or_split();
    // What a kill repeats is what was read but not yet acknowledged, which the byte budget
    // bounds (a read may overshoot it by one chunk), plus at most one batch acknowledged in the
    // instant before the kill, plus a line of the other stream read past a held P fragment in
    // each container. Every record costs at least its message bytes.
    let min_msg = 150;
    let bound = (MAX_BUFFER_BYTES + READ_CHUNK + BATCH_MAX_BYTES) / min_msg + CONTAINERS * 2;
    assert!(
        o.duplicated <= bound as u64,
        "duplicated {} > bound {bound}",
        o.duplicated
    );
}
