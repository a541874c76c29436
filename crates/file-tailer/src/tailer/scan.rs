//! Discovery: maps change notifications to container directories, lists and reconciles a
//! directory with the tracked state, and decides for a file not tracked yet whether it is new
//! (read it, from its checkpoint if it has one), a copy of a tracked or finished file (skip it)
//! or the copy a truncated file continues in (adopt it).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FileId, Tailer, Tracked, read::Reader};
use crate::fingerprint::fingerprint_path;
use crate::path::{ContainerInfo, FileKind, FileName, container_info, parse_file_name};
use crate::tailer::Event;

/// Listing of one file in a container directory.
struct Listed {
    path: PathBuf,
    name: FileName,
    dev: u64,
    ino: u64,
    size: u64,
    /// Inode change time (ns): with device, inode and size the key of the fingerprint cache. A
    /// freed inode is soon reused by the next file the kubelet creates; the change time tells
    /// the new file from the old one even when their sizes happen to match.
    ctime_ns: i64,
}

/// How long a finished file must be absent from its directory before its fingerprint is
/// forgotten (longer than any listing race; the reconciliation scan revisits every directory).
const DONE_FORGET_AFTER: Duration = Duration::from_secs(60);

impl Listed {
    fn cache_key(&self) -> super::CacheKey {
        (self.dev, self.ino, self.size, self.ctime_ns)
    }
}

impl Tailer {
    /// Maps a changed path to the container directory (or directories) to rescan.
    pub(super) fn mark_path_dirty(&mut self, p: &Path) {
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

    pub(super) fn queue_full_scan(&mut self) {
        self.last_reconcile = Instant::now();
        self.full_scan_dirs();
    }

    pub(super) fn full_scan(&mut self) {
        self.full_scan_dirs();
        let dirs: Vec<PathBuf> = self.dirty_dirs.drain().collect();
        // Exact inode matches first so a copy never steals a checkpoint from its original.
        for d in dirs {
            self.scan_dir(&d);
        }
    }

    pub(super) fn full_scan_dirs(&mut self) {
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

    pub(super) fn scan_pod_dir(&mut self, pod_dir: &Path) {
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
                ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
            });
        }
        out
    }

    /// Reconciles one container directory with the tracked state.
    pub(super) fn scan_dir(&mut self, dir: &Path) {
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
            if let Some(fp) = self.fp_cache.get(&l.cache_key()) {
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
        // Done entries whose file is gone from this directory can be forgotten, once it stayed
        // gone for a while: a listing taken while the kubelet renames `NAME.tmp` to `NAME.gz`
        // and removes `NAME` may show neither (readdir during a rename is unspecified), and a
        // done entry forgotten then would have the `.gz` shipped again.
        let before = self.done.len();
        let now = Instant::now();
        let missing = &mut self.done_missing;
        self.done.retain(|fp, e| {
            if e.path.parent() != Some(dir) {
                return true;
            }
            if seen_fps.contains(fp) {
                missing.remove(fp);
                return true;
            }
            let since = *missing.entry(*fp).or_insert(now);
            if now.duration_since(since) < DONE_FORGET_AFTER {
                return true;
            }
            missing.remove(fp);
            false
        });
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
        let key = l.cache_key();
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
            self.skip_copy(key, fp);
            return None;
        }
        if self.done.contains_key(&fp) || self.tracked.values().any(|t| t.fp == fp && t.dir == dir)
        {
            self.skip_copy(key, fp);
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
                    if (e.dev, e.ino) != (l.dev, l.ino) {
                        // Renamed into a copy (kubelet gzip) while we were down: what the
                        // checkpoint covers was shipped already.
                        self.duplicate += e.offset;
                    }
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

    /// Remembers a file whose content is already shipped or being read under another inode (the
    /// kubelet's `.gz` of a rotated file, a copytruncate copy) so it is neither read nor
    /// fingerprinted again, and counts its bytes once as a skipped duplicate. The original itself
    /// (same inode, read to its end and still listed) is not a duplicate.
    fn skip_copy(&mut self, key: super::CacheKey, fp: u64) {
        if self.fp_cache.insert(key, fp).is_some() {
            return;
        }
        let (dev, ino, ..) = key;
        let original = self
            .tracked
            .values()
            .find(|t| t.fp == fp)
            .map(|t| (t.dev, t.ino, t.size.max(t.pos)))
            .or_else(|| self.done.get(&fp).map(|e| (e.dev, e.ino, e.offset)));
        if let Some((odev, oino, bytes)) = original
            && (odev, oino) != (dev, ino)
        {
            self.duplicate += bytes;
        }
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

    pub(super) fn emit_opened(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
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
}
