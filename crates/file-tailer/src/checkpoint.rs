//! Checkpoint store: one JSON file in the state directory, written atomically (temp file, fsync,
//! rename, fsync of the directory) so a crash at any point leaves either the old or the new file.
//! Offsets stored here are *acknowledged* offsets: the sink confirmed every line before them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

const FILE_NAME: &str = "checkpoints.json";

/// One file's position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Content fingerprint (hex in JSON for readability).
    #[serde(with = "hex_u64")]
    pub fp: u64,
    pub dev: u64,
    pub ino: u64,
    /// Last path the file was seen under.
    pub path: PathBuf,
    /// Acknowledged offset (uncompressed bytes).
    pub offset: u64,
    /// Last known size, used to count bytes lost if the file vanishes before it was read.
    pub size: u64,
    /// Read to its end and acknowledged; kept so a `.gz` copy of it is not shipped again.
    pub done: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    files: Vec<Entry>,
}

/// Reads and writes the checkpoint file.
#[derive(Debug)]
pub struct Checkpointer {
    dir: PathBuf,
}

impl Checkpointer {
    /// Creates the state directory if needed.
    pub fn new(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Path of the checkpoint file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Loads the entries; a missing file means a fresh start, a corrupt one is an error (refusing
    /// to start beats silently re-shipping or skipping everything).
    pub fn load(&self) -> Result<Vec<Entry>, Error> {
        let path = self.path();
        match fs::read(&path) {
            Ok(data) => {
                let f: FileFormat = serde_json::from_slice(&data)
                    .map_err(|e| Error::Corrupt(path.clone(), e.to_string()))?;
                Ok(f.files)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io(path, e)),
        }
    }

    /// Writes all entries atomically: temp file, fsync, rename, fsync dir.
    pub fn store(&self, files: Vec<Entry>) -> Result<(), Error> {
        let data = serde_json::to_vec(&FileFormat { version: 1, files })
            .map_err(|e| Error::Corrupt(self.path(), e.to_string()))?;
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let io = |e| Error::Io(tmp.clone(), e);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&data).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, self.path()).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Io(self.dir.clone(), e))?;
        Ok(())
    }
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` signature takes `&T`
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpointer::new(dir.path()).unwrap();
        assert!(c.load().unwrap().is_empty());
        let e = Entry {
            fp: u64::MAX - 3,
            dev: 1,
            ino: 2,
            path: "/x/0.log".into(),
            offset: 10,
            size: 20,
            done: false,
        };
        c.store(vec![e.clone()]).unwrap();
        assert_eq!(c.load().unwrap(), vec![e]);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
        fs::write(c.path(), b"{not json").unwrap();
        assert!(matches!(c.load(), Err(Error::Corrupt(..))));
    }
}
