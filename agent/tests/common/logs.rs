//! Container log files written like the kubelet/containerd do (CRI lines, partial lines,
//! rotation, gzip, copytruncate) and their RFC3339Nano timestamps.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC3339Nano of now, as the kubelet/containerd write it.
pub fn rfc3339_now() -> String {
    rfc3339_at(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

/// RFC3339Nano of a time since the Unix epoch.
pub fn rfc3339_at(d: Duration) -> String {
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let dd = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// A container's log directory, written like the kubelet/containerd do.
#[derive(Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub ns: String,
    pub pod: String,
    pub uid: String,
    pub name: String,
}

impl Container {
    pub fn new(root: &Path, ns: &str, pod: &str, name: &str) -> Container {
        let uid = format!("uid-{pod}");
        let dir = root.join(format!("{ns}_{pod}_{uid}")).join(name);
        fs::create_dir_all(&dir).unwrap();
        Container {
            dir,
            ns: ns.into(),
            pod: pod.into(),
            uid,
            name: name.into(),
        }
    }

    pub fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.live())
            .unwrap()
    }

    /// Full lines, one write each.
    pub fn write(&self, stream: &str, msgs: &[String]) {
        let mut buf = String::new();
        for m in msgs {
            buf.push_str(&format!("{} {stream} F {m}\n", rfc3339_now()));
        }
        self.open().write_all(buf.as_bytes()).unwrap();
    }

    /// One logical line split into partial fragments (P ... P F).
    pub fn write_partial(&self, stream: &str, parts: &[&str]) {
        let mut buf = String::new();
        for (i, p) in parts.iter().enumerate() {
            let tag = if i + 1 == parts.len() { "F" } else { "P" };
            buf.push_str(&format!("{} {stream} {tag} {p}\n", rfc3339_now()));
        }
        self.open().write_all(buf.as_bytes()).unwrap();
    }

    pub fn write_raw(&self, raw: &[u8]) {
        self.open().write_all(raw).unwrap();
    }

    /// Kubelet rotation: rename `0.log` to `0.log.<stamp>`; the runtime reopens `0.log`.
    pub fn rotate(&self, stamp: &str) -> PathBuf {
        let to = self.dir.join(format!("0.log.{stamp}"));
        fs::rename(self.live(), &to).unwrap();
        to
    }

    /// Kubelet compression of a rotated file: `.tmp`, rename to `.gz`, remove the original.
    pub fn gzip(&self, rotated: &Path) {
        let data = fs::read(rotated).unwrap();
        let gz = PathBuf::from(format!("{}.gz", rotated.display()));
        let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        fs::rename(&tmp, &gz).unwrap();
        fs::remove_file(rotated).unwrap();
    }

    /// logrotate copytruncate.
    pub fn copytruncate(&self, stamp: &str) {
        fs::copy(self.live(), self.dir.join(format!("0.log.{stamp}"))).unwrap();
        OpenOptions::new()
            .write(true)
            .open(self.live())
            .unwrap()
            .set_len(0)
            .unwrap();
    }
}
