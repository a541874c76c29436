//! The reader thread: drives the tailer, assembles records, hands them to the sinks, applies the
//! sinks' acknowledgements (a file's offset advances to the minimum acknowledged by every sink)
//! and writes checkpoints. Memory is bounded by the byte budget: when it is used up, reading
//! pauses and the kubelet's files are the buffer. When it has caught up with every file it
//! tells the sinks, so the tail of a drained backlog is not held back for the batch wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use file_tailer::{FileId, Tailer};
use tokio::sync::mpsc;

use crate::assemble::Assembler;
use crate::kube_meta::MetaStore;
use crate::metrics::{Metrics, now_ns, set_total};
use crate::record::{ByteBudget, Record};
use crate::sink::{Ack, Input};

/// Reader settings.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub tailer: file_tailer::Config,
    pub max_joined: usize,
    pub checkpoint_interval: Duration,
    /// How long to wait for the sinks' last acknowledgements at shutdown.
    pub shutdown_timeout: Duration,
    /// Pod metadata to garbage-collect once a deleted pod's files are drained.
    pub meta: Option<Arc<MetaStore>>,
}

/// How long a join cut by a rotation waits for the container's next file once the reader has
/// caught up (the runtime writes the final fragment right after the kubelet's reopen).
const CARRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Smallest read worth waking up for when the budget is nearly used up (at most half the
/// budget, so a buffer smaller than this still gets read).
const MIN_READ: usize = 64 * 1024;

struct AckState {
    sinks: usize,
    per_file: HashMap<FileId, Vec<u64>>,
}

impl AckState {
    fn apply(&mut self, tailer: &mut Tailer, ack: Ack) {
        for (file, off) in ack.offsets {
            if self.sinks == 1 {
                tailer.ack(file, off);
                continue;
            }
            let v = self
                .per_file
                .entry(file)
                .or_insert_with(|| vec![0; self.sinks]);
            v[ack.sink] = v[ack.sink].max(off);
            let min = v.iter().copied().min().unwrap_or(0);
            tailer.ack(file, min);
            if v.iter().all(|x| *x == min) {
                self.per_file.remove(&file);
            }
        }
    }
}

/// Hands the assembled records to every sink. Returns whether there were any.
fn send(out: &mut Vec<Record>, sinks: &[mpsc::Sender<Input>]) -> bool {
    if out.is_empty() {
        return false;
    }
    let chunk: Arc<[Arc<Record>]> = out.drain(..).map(Arc::new).collect::<Vec<_>>().into();
    for s in sinks {
        // A closed sink only happens at shutdown; its records are read again after restart.
        let _ = s.blocking_send(Input::Records(chunk.clone()));
    }
    true
}

fn caught_up(sinks: &[mpsc::Sender<Input>]) {
    for s in sinks {
        let _ = s.blocking_send(Input::CaughtUp);
    }
}

fn publish(tailer: &Tailer, metrics: &Metrics, meta: Option<&MetaStore>) {
    if let Some(m) = meta {
        m.gc(&tailer.tracked_uids());
        metrics.kube_pods.set(m.len() as i64);
        metrics.kube_deleted_pods.set(m.deleted() as i64);
    }
    let s = tailer.stats();
    metrics.lag_bytes.set(s.lag_bytes as i64);
    metrics.open_files.set(s.open_files as i64);
    set_total(&metrics.rotation_lost_bytes, s.rotation_lost_bytes);
    set_total(
        &metrics.rotation_duplicate_bytes,
        s.rotation_duplicate_bytes,
    );
    if let Some(t) = s
        .last_checkpoint
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    {
        metrics.last_checkpoint_unix.set(t.as_secs() as i64);
    }
}

/// Runs the reader until `stop` is set, then waits (bounded) for the sinks to finish and writes
/// the final checkpoint.
pub fn run_reader(
    cfg: &ReaderConfig,
    mut tailer: Tailer,
    sinks: Vec<mpsc::Sender<Input>>,
    acks: &std::sync::mpsc::Receiver<Ack>,
    budget: &ByteBudget,
    metrics: &Arc<Metrics>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut asm = Assembler::new(cfg.max_joined, budget.clone(), metrics.clone());
    let mut ack_state = AckState {
        sinks: sinks.len(),
        per_file: HashMap::new(),
    };
    let mut out: Vec<Record> = Vec::new();
    asm.set_now(now_ns());
    tailer.start(&mut |ev| asm.handle(ev, &mut out));
    // Whether records went to the sinks since they were last told the reader caught up.
    let mut sent = send(&mut out, &sinks);
    tailer.checkpoint()?;
    publish(&tailer, metrics, cfg.meta.as_deref());
    metrics.ready.store(true, Ordering::Relaxed);
    let min_read = MIN_READ.min(budget.limit() / 2).max(1);
    let mut last_cp = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut acked = false;
        while let Ok(a) = acks.try_recv() {
            ack_state.apply(&mut tailer, a);
            acked = true;
        }
        // Persist acknowledged offsets at once (coalesced over the acks drained above), so a
        // kill -9 repeats only batches still in flight, not a timer's worth of delivered lines.
        if acked && let Err(e) = tailer.checkpoint() {
            tracing::error!(error = %e, "checkpoint write failed");
        }
        let avail = budget.available();
        if avail < min_read {
            // Paused (backpressure): keep the notification queue drained so it stays bounded.
            tailer.drain_changes();
            budget.wait_available(min_read, Duration::from_millis(100));
        } else {
            asm.set_now(now_ns());
            let n = tailer.step(avail, &mut |ev| asm.handle(ev, &mut out));
            sent |= send(&mut out, &sinks);
            if n == 0 && !tailer.has_work() {
                asm.expire(CARRY_TIMEOUT, &mut out);
                sent |= send(&mut out, &sinks);
                if sent {
                    caught_up(&sinks);
                    sent = false;
                }
                tailer.wait(Duration::from_millis(200));
            }
        }
        if last_cp.elapsed() >= cfg.checkpoint_interval {
            if let Err(e) = tailer.checkpoint() {
                tracing::error!(error = %e, "checkpoint write failed");
            }
            publish(&tailer, metrics, cfg.meta.as_deref());
            last_cp = Instant::now();
        }
    }
    // Shutdown: no more reading; let the sinks deliver what they hold, take their acks.
    drop(sinks);
    let deadline = Instant::now() + cfg.shutdown_timeout + Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match acks.recv_timeout(left) {
            Ok(a) => ack_state.apply(&mut tailer, a),
            Err(_) => break,
        }
    }
    tailer.checkpoint()?;
    publish(&tailer, metrics, cfg.meta.as_deref());
    tracing::info!("final checkpoint written");
    Ok(())
}
