//! Change notification: inotify (via `notify`) on the log root, recursively, reporting which
//! paths changed; if inotify cannot be set up (no support, watch limit) the tailer falls back to
//! polling. Queue overflow (`need_rescan`) triggers a full reconciliation scan.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};

/// A batch of changes.
#[derive(Debug, Default)]
pub struct Changes {
    /// Paths whose content changed (writes, truncation).
    pub modified: Vec<PathBuf>,
    /// Paths created, removed or renamed: their directory must be rescanned.
    pub structural: Vec<PathBuf>,
    /// Events were lost (queue overflow or watcher error): rescan everything.
    pub rescan: bool,
}

/// inotify watcher; `None` inside means polling mode.
pub struct Watch {
    inner: Option<(
        notify::RecommendedWatcher,
        Receiver<notify::Result<notify::Event>>,
    )>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("inotify", &self.inner.is_some())
            .finish()
    }
}

impl Watch {
    /// Tries inotify on `root`; returns polling mode if `force_poll` or on failure.
    pub fn new(root: &Path, force_poll: bool) -> Self {
        if force_poll {
            return Self { inner: None };
        }
        let (tx, rx) = channel();
        let watcher = notify::recommended_watcher(move |ev| {
            // The receiver only goes away at shutdown.
            let _ = tx.send(ev);
        });
        match watcher {
            Ok(mut w) => match w.watch(root, RecursiveMode::Recursive) {
                Ok(()) => Self {
                    inner: Some((w, rx)),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "inotify watch failed, falling back to polling");
                    Self { inner: None }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable, falling back to polling");
                Self { inner: None }
            }
        }
    }

    /// Whether inotify is active.
    pub fn is_inotify(&self) -> bool {
        self.inner.is_some()
    }

    /// Takes whatever changes are queued without waiting (nothing in polling mode). Used while
    /// reading is paused so the event queue cannot grow without bound.
    pub fn drain(&mut self) -> Changes {
        let mut out = Changes::default();
        if let Some((_, rx)) = &self.inner {
            while let Ok(ev) = rx.try_recv() {
                classify(ev, &mut out);
            }
        }
        out
    }

    /// Waits up to `timeout` for changes and drains everything queued. In polling mode it sleeps
    /// and asks for a full rescan.
    pub fn wait(&mut self, timeout: Duration) -> Changes {
        let mut out = Changes::default();
        let Some((_, rx)) = &self.inner else {
            std::thread::sleep(timeout);
            out.rescan = true;
            return out;
        };
        let first = match rx.recv_timeout(timeout) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => return out,
            Err(RecvTimeoutError::Disconnected) => {
                out.rescan = true;
                return out;
            }
        };
        classify(first, &mut out);
        while let Ok(ev) = rx.try_recv() {
            classify(ev, &mut out);
        }
        out
    }
}

fn classify(ev: notify::Result<notify::Event>, out: &mut Changes) {
    match ev {
        Ok(ev) => {
            if ev.need_rescan() {
                out.rescan = true;
            }
            match ev.kind {
                EventKind::Modify(notify::event::ModifyKind::Data(_)) => {
                    out.modified.extend(ev.paths);
                }
                // Our own reads produce open/close events and metadata changes carry no data:
                // reacting to them would make reading feed itself.
                EventKind::Access(_)
                | EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => {}
                _ => out.structural.extend(ev.paths),
            }
        }
        Err(_) => out.rescan = true,
    }
}
