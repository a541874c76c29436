//! Node metrics read from `/proc` and `/sys` under `--host-root`, with node_exporter's names and
//! labels so standard node dashboards work: CPU, memory, load, filesystems, network, disk I/O,
//! boot time and time. Read on every scrape (cheap: a few small procfs files).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// USER_HZ: the kernel reports `/proc/stat` in 1/100 s on every Linux architecture we run on.
const USER_HZ: f64 = 100.0;

/// File system types node_exporter ignores by default.
const IGNORED_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
];

/// Collects node metrics from a host root.
#[derive(Debug, Clone)]
pub struct NodeCollector {
    root: PathBuf,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Mount points node_exporter ignores by default.
fn ignored_mount(mp: &str) -> bool {
    [
        "/dev",
        "/proc",
        "/sys",
        "/run/credentials/",
        "/var/lib/docker/",
        "/var/lib/containers/storage/",
    ]
    .iter()
    .any(|p| {
        mp == p.trim_end_matches('/') || mp.starts_with(&format!("{}/", p.trim_end_matches('/')))
    })
}

/// Partitions and virtual devices node_exporter's diskstats ignores by default.
fn ignored_disk(dev: &str) -> bool {
    let base = dev.trim_end_matches(|c: char| c.is_ascii_digit());
    if ["ram", "zram", "loop", "fd"].contains(&base) {
        return true;
    }
    // Partitions: sda1, vda2, xvda1, nvme0n1p1.
    (["sd", "hd", "vd", "xvd"].iter().any(|p| {
        base.strip_prefix(p)
            .is_some_and(|r| r.len() == 1 && r.chars().all(|c| c.is_ascii_lowercase()))
    }) && base.len() != dev.len())
        || (dev.starts_with("nvme") && dev.contains('p') && dev.rfind('p') > dev.find('n'))
}

impl NodeCollector {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.join(rel)).ok()
    }

    /// Appends all node metrics to `out`. Missing files just omit their metrics.
    pub fn render(&self, out: &mut String) {
        self.stat(out);
        self.meminfo(out);
        self.loadavg(out);
        self.filesystems(out);
        self.netdev(out);
        self.diskstats(out);
        header(
            out,
            "node_time_seconds",
            "gauge",
            "System time in seconds since epoch (1970).",
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(out, "node_time_seconds {now}");
    }

    fn stat(&self, out: &mut String) {
        let Some(s) = self.read("proc/stat") else {
            return;
        };
        let modes = [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ];
        header(
            out,
            "node_cpu_seconds_total",
            "counter",
            "Seconds the CPUs spent in each mode.",
        );
        let mut btime = None;
        for line in s.lines() {
            let mut it = line.split_ascii_whitespace();
            let Some(name) = it.next() else { continue };
            if let Some(n) = name.strip_prefix("cpu") {
                if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                for (mode, v) in modes.iter().zip(it) {
                    let v: f64 = v.parse().unwrap_or(0.0);
                    let _ = writeln!(
                        out,
                        "node_cpu_seconds_total{{cpu=\"{n}\",mode=\"{mode}\"}} {}",
                        v / USER_HZ
                    );
                }
            } else if name == "btime" {
                btime = it.next().and_then(|v| v.parse::<u64>().ok());
            }
        }
        if let Some(b) = btime {
            header(
                out,
                "node_boot_time_seconds",
                "gauge",
                "Node boot time, in unixtime.",
            );
            let _ = writeln!(out, "node_boot_time_seconds {b}");
        }
    }

    fn meminfo(&self, out: &mut String) {
        let Some(s) = self.read("proc/meminfo") else {
            return;
        };
        for line in s.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached"].contains(&k) {
                continue;
            }
            let mut it = v.split_ascii_whitespace();
            let Some(n) = it.next().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let bytes = if it.next() == Some("kB") { n * 1024 } else { n };
            let name = format!("node_memory_{k}_bytes");
            header(
                out,
                &name,
                "gauge",
                &format!("Memory information field {k}_bytes."),
            );
            let _ = writeln!(out, "{name} {bytes}");
        }
    }

    fn loadavg(&self, out: &mut String) {
        let Some(s) = self.read("proc/loadavg") else {
            return;
        };
        let mut it = s.split_ascii_whitespace();
        for (name, help) in [
            ("node_load1", "1m"),
            ("node_load5", "5m"),
            ("node_load15", "15m"),
        ] {
            if let Some(v) = it.next().and_then(|v| v.parse::<f64>().ok()) {
                header(out, name, "gauge", &format!("{help} load average."));
                let _ = writeln!(out, "{name} {v}");
            }
        }
    }

    fn filesystems(&self, out: &mut String) {
        type Get = fn(&(String, String, String, f64, f64, f64)) -> f64;
        let Some(s) = self
            .read("proc/1/mounts")
            .or_else(|| self.read("proc/mounts"))
        else {
            return;
        };
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for line in s.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 3 {
                continue;
            }
            let (device, mp, fstype) = (f[0], f[1].replace("\\040", " "), f[2]);
            if IGNORED_FS.contains(&fstype) || ignored_mount(&mp) || !seen.insert(mp.clone()) {
                continue;
            }
            let path = self.root.join(mp.trim_start_matches('/'));
            let Ok(st) = nix::sys::statvfs::statvfs(Path::new(&path)) else {
                continue;
            };
            let frsize = st.fragment_size() as f64;
            rows.push((
                device.to_owned(),
                fstype.to_owned(),
                mp,
                st.blocks() as f64 * frsize,
                st.blocks_available() as f64 * frsize,
                st.blocks_free() as f64 * frsize,
            ));
        }
        let metrics: [(&str, &str, Get); 3] = [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |r| r.3,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |r| r.4,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |r| r.5,
            ),
        ];
        for (name, help, get) in metrics {
            header(out, name, "gauge", help);
            for r in &rows {
                let _ = writeln!(
                    out,
                    "{name}{{device=\"{}\",fstype=\"{}\",mountpoint=\"{}\"}} {}",
                    escape(&r.0),
                    escape(&r.1),
                    escape(&r.2),
                    get(r)
                );
            }
        }
    }

    fn netdev(&self, out: &mut String) {
        let Some(s) = self.read("proc/net/dev") else {
            return;
        };
        let mut rows = Vec::new();
        for line in s.lines().skip(2) {
            let Some((dev, rest)) = line.split_once(':') else {
                continue;
            };
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() >= 9 {
                rows.push((dev.trim().to_owned(), f[0], f[8]));
            }
        }
        header(
            out,
            "node_network_receive_bytes_total",
            "counter",
            "Network device statistic receive_bytes.",
        );
        for (d, rx, _) in &rows {
            let _ = writeln!(
                out,
                "node_network_receive_bytes_total{{device=\"{}\"}} {rx}",
                escape(d)
            );
        }
        header(
            out,
            "node_network_transmit_bytes_total",
            "counter",
            "Network device statistic transmit_bytes.",
        );
        for (d, _, tx) in &rows {
            let _ = writeln!(
                out,
                "node_network_transmit_bytes_total{{device=\"{}\"}} {tx}",
                escape(d)
            );
        }
    }

    fn diskstats(&self, out: &mut String) {
        type Get = fn(&(String, f64, f64, f64)) -> f64;
        let Some(s) = self.read("proc/diskstats") else {
            return;
        };
        let mut rows = Vec::new();
        for line in s.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 14 || ignored_disk(f[2]) {
                continue;
            }
            let n = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
            // Fields (after major, minor, name): 6 = sectors read, 10 = sectors written,
            // 13 = ms doing I/O. Sectors are always 512 bytes in this interface.
            rows.push((f[2].to_owned(), n(5) * 512.0, n(9) * 512.0, n(12) / 1000.0));
        }
        let metrics: [(&str, &str, Get); 3] = [
            (
                "node_disk_read_bytes_total",
                "The total number of bytes read successfully.",
                |r| r.1,
            ),
            (
                "node_disk_written_bytes_total",
                "The total number of bytes written successfully.",
                |r| r.2,
            ),
            (
                "node_disk_io_time_seconds_total",
                "Total seconds spent doing I/Os.",
                |r| r.3,
            ),
        ];
        for (name, help, get) in metrics {
            header(out, name, "counter", help);
            for r in &rows {
                let _ = writeln!(out, "{name}{{device=\"{}\"}} {}", escape(&r.0), get(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_filter_matches_node_exporter_defaults() {
        for d in [
            "sda1",
            "vda2",
            "xvda1",
            "nvme0n1p1",
            "loop0",
            "ram1",
            "zram0",
        ] {
            assert!(ignored_disk(d), "{d}");
        }
        for d in ["sda", "vda", "nvme0n1", "dm-0", "md0"] {
            assert!(!ignored_disk(d), "{d}");
        }
    }
}
