//! Tails Kubernetes container log files the way the kubelet writes them.
//!
//! Owns: discovery of `<root>/<ns>_<pod>_<uid>/<container>/<n>.log` and rotated siblings
//! (`<n>.log.<ts>`, `<n>.log.<ts>.gz`), change notification (inotify with a polling fallback and
//! full reconciliation on queue overflow), file identity by device+inode plus a content
//! fingerprint, rotation by rename and by copytruncate, reading rotated files to their end before
//! letting go, counting bytes deleted before they were read, and atomic checkpoints of
//! *acknowledged* offsets. It does not parse log formats: it hands out raw lines with their byte
//! offsets and the caller acknowledges offsets once its sink confirmed delivery.

mod checkpoint;
mod fingerprint;
mod path;
mod tailer;
mod watch;

use std::path::PathBuf;

pub use checkpoint::{Checkpointer, Entry};
pub use fingerprint::{fingerprint_reader, fnv1a};
pub use path::{ContainerInfo, FileKind, FileName, parse_file_name, parse_pod_dir};
pub use tailer::{Config, Event, FileId, Line, Stats, Tailer};

/// Errors the tailer reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("checkpoint file {0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
}
