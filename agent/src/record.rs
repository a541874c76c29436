//! What flows from the reader to the sinks: one log record per (joined) line, carrying the file
//! offset that may be acknowledged once it is delivered, plus the byte budget that bounds memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use file_tailer::{ContainerInfo, FileId};

use crate::parse::Stream;

/// Per-file data shared by all of the file's records.
#[derive(Debug)]
pub struct FileMeta {
    pub container: Arc<ContainerInfo>,
    pub restart: u32,
    pub path: String,
}

/// Record flags (structured metadata in Loki, attributes in OTLP).
pub const FLAG_TRUNCATED: u8 = 1;
pub const FLAG_MALFORMED: u8 = 2;
pub const FLAG_UNTERMINATED: u8 = 4;

/// One log record.
#[derive(Debug)]
pub struct Record {
    pub file: FileId,
    /// File offset that may be acknowledged once this record (and all before it) is delivered.
    pub commit: u64,
    /// Offsets in other files acknowledged with it: the files a join cut by a rotation began in.
    pub also: Vec<(FileId, u64)>,
    pub ts_ns: i64,
    /// `None` for malformed lines shipped raw.
    pub stream: Option<Stream>,
    pub line: String,
    pub flags: u8,
    pub meta: Arc<FileMeta>,
    /// Unix ns when the line was read (OTLP observed time, lag).
    pub read_ns: i64,
    pub guard: BudgetGuard,
}

impl Record {
    pub fn stream_str(&self) -> &'static str {
        self.stream.map_or("unknown", Stream::as_str)
    }
}

/// A byte budget shared by the reader (which waits when it is used up) and the records (which
/// give their bytes back when dropped, i.e. when every sink is done with them). The counter is
/// atomic so the per-record path takes no lock; only a waiting reader uses the condvar, and it is
/// woken once enough is free for it, not by every record dropped (that would cost a futex wake
/// and a context switch per record while reading is paused).
#[derive(Debug, Clone)]
pub struct ByteBudget {
    inner: Arc<BudgetInner>,
    limit: usize,
}

#[derive(Debug)]
struct BudgetInner {
    used: AtomicUsize,
    /// Bytes the waiting reader needs available (0: nobody waits).
    want: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                used: AtomicUsize::new(0),
                want: AtomicUsize::new(0),
                lock: Mutex::new(()),
                cv: Condvar::new(),
            }),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently held by records.
    pub fn used(&self) -> usize {
        // SeqCst pairs with `want` (see `give_back`): a waiter that misses a release is woken.
        self.inner.used.load(Ordering::SeqCst)
    }

    /// Bytes that may be read now.
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// Waits until at least `min` bytes are available or `timeout` passes.
    pub fn wait_available(&self, min: usize, timeout: Duration) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            self.inner.want.store(min.max(1), Ordering::SeqCst);
            let avail = self.available();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if avail >= min || left.is_zero() {
                self.inner.want.store(0, Ordering::SeqCst);
                return avail;
            }
            // Either this check sees a release or the releaser sees `want` (both SeqCst) and
            // notifies under the lock; the short timeout is only a safety net.
            let (ng, _) = self
                .inner
                .cv
                .wait_timeout(g, left.min(Duration::from_millis(10)))
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            g = ng;
        }
    }

    /// Takes `n` bytes (may overshoot the limit by one read; the reader checks before reading).
    pub fn take(&self, n: usize) -> BudgetGuard {
        self.inner.used.fetch_add(n, Ordering::AcqRel);
        BudgetGuard {
            budget: Some(self.clone()),
            n,
        }
    }

    fn give_back(&self, n: usize) {
        let used = self
            .inner
            .used
            .fetch_sub(n, Ordering::SeqCst)
            .saturating_sub(n);
        let want = self.inner.want.load(Ordering::SeqCst);
        if want > 0 && self.limit.saturating_sub(used) >= want {
            let _g = self
                .inner
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.inner.cv.notify_all();
        }
    }
}

/// Returns its bytes to the budget when dropped.
#[derive(Debug)]
pub struct BudgetGuard {
    budget: Option<ByteBudget>,
    n: usize,
}

impl BudgetGuard {
    /// A guard that holds nothing (tests, tools).
    pub fn none() -> Self {
        Self { budget: None, n: 0 }
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.n);
        }
    }
}
