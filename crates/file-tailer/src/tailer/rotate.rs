//! Rotation and truncation: letting go of a file read to its end and acknowledged (its
//! fingerprint is remembered so a later copy is not shipped again), copytruncate detection and
//! the wait for the copy a truncated file continues in.

use std::fs::File;
use std::time::Instant;

use super::{Event, FileId, Tailer};

impl Tailer {
    /// Read to the end and acknowledged: forget it, remember its fingerprint as done.
    pub(super) fn finish(&mut self, id: FileId) {
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
    pub(super) fn handle_truncation(&mut self, id: FileId) {
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
    pub(super) fn check_detached(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
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
pub(super) fn first_line_fp(f: &File) -> Option<u64> {
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
