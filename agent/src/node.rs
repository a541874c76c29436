//! Node metrics read from `/proc` and `/sys` under `--host-root`, with node_exporter's names and
//! labels so standard node dashboards work: CPU, memory, load, filesystems, network, disk I/O,
//! boot time and time. Read on every scrape (cheap: a few small procfs files), as a
//! prometheus-client [`Collector`] in the agent's registry.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

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

/// Label values go out as written, so quotes, backslashes and newlines are escaped here.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One family: its `# HELP`/`# TYPE` and a sample per label set. Counters are named without
/// `_total`, which the encoder appends to their samples.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in samples {
        let s = m.encode_family(&labels)?;
        if matches!(ty, MetricType::Counter) {
            ConstCounter::new(v).encode(s)?;
        } else {
            ConstGauge::new(v).encode(s)?;
        }
    }
    Ok(())
}

/// A row of a table of samples: `M` labels and a value for each of `N` families.
type Row<const M: usize, const N: usize> = ([(&'static str, String); M], [f64; N]);

/// A family per column of `rows`, named and described by `cols`.
fn table<const M: usize, const N: usize>(
    enc: &mut DescriptorEncoder,
    ty: MetricType,
    cols: [(&str, &str); N],
    rows: &[Row<M, N>],
) -> fmt::Result {
    for (i, (name, help)) in cols.into_iter().enumerate() {
        let samples = rows.iter().map(|(l, v)| (l.as_slice(), v[i]));
        family(enc, name, help, ty, samples)?;
    }
    Ok(())
}

/// A gauge without labels.
fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
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

impl Collector for NodeCollector {
    /// All node metrics. Missing files just omit their metrics.
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.stat(&mut enc)?;
        self.meminfo(&mut enc)?;
        self.loadavg(&mut enc)?;
        self.filesystems(&mut enc)?;
        self.netdev(&mut enc)?;
        self.diskstats(&mut enc)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        gauge(
            &mut enc,
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            now,
        )
    }
}

impl NodeCollector {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.join(rel)).ok()
    }

    fn stat(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self.read("proc/stat") else {
            return Ok(());
        };
        let modes = [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ];
        let mut cpu = Vec::new();
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
                    cpu.push(([("cpu", n), ("mode", *mode)], v / USER_HZ));
                }
            } else if name == "btime" {
                btime = it.next().and_then(|v| v.parse::<u64>().ok());
            }
        }
        family(
            enc,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
            cpu,
        )?;
        match btime {
            Some(b) => gauge(
                enc,
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                b as f64,
            ),
            None => Ok(()),
        }
    }

    fn meminfo(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self.read("proc/meminfo") else {
            return Ok(());
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
            gauge(
                enc,
                &format!("node_memory_{k}_bytes"),
                &format!("Memory information field {k}_bytes."),
                bytes as f64,
            )?;
        }
        Ok(())
    }

    fn loadavg(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self.read("proc/loadavg") else {
            return Ok(());
        };
        let mut it = s.split_ascii_whitespace();
        for (name, help) in [
            ("node_load1", "1m"),
            ("node_load5", "5m"),
            ("node_load15", "15m"),
        ] {
            if let Some(v) = it.next().and_then(|v| v.parse::<f64>().ok()) {
                gauge(enc, name, &format!("{help} load average."), v)?;
            }
        }
        Ok(())
    }

    fn filesystems(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self
            .read("proc/1/mounts")
            .or_else(|| self.read("proc/mounts"))
        else {
            return Ok(());
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
            let labels = [
                ("device", escape(device)),
                ("fstype", escape(fstype)),
                ("mountpoint", escape(&mp)),
            ];
            rows.push((
                labels,
                [
                    st.blocks() as f64 * frsize,
                    st.blocks_available() as f64 * frsize,
                    st.blocks_free() as f64 * frsize,
                ],
            ));
        }
        table(
            enc,
            MetricType::Gauge,
            [
                ("node_filesystem_size_bytes", "Filesystem size in bytes."),
                (
                    "node_filesystem_avail_bytes",
                    "Filesystem space available to non-root users in bytes.",
                ),
                (
                    "node_filesystem_free_bytes",
                    "Filesystem free space in bytes.",
                ),
            ],
            &rows,
        )
    }

    fn netdev(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self.read("proc/net/dev") else {
            return Ok(());
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
                rows.push(([("device", escape(dev.trim()))], [f[0] as f64, f[8] as f64]));
            }
        }
        table(
            enc,
            MetricType::Counter,
            [
                (
                    "node_network_receive_bytes",
                    "Network device statistic receive_bytes.",
                ),
                (
                    "node_network_transmit_bytes",
                    "Network device statistic transmit_bytes.",
                ),
            ],
            &rows,
        )
    }

    fn diskstats(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(s) = self.read("proc/diskstats") else {
            return Ok(());
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
            rows.push((
                [("device", escape(f[2]))],
                [n(5) * 512.0, n(9) * 512.0, n(12) / 1000.0],
            ));
        }
        table(
            enc,
            MetricType::Counter,
            [
                (
                    "node_disk_read_bytes",
                    "The total number of bytes read successfully.",
                ),
                (
                    "node_disk_written_bytes",
                    "The total number of bytes written successfully.",
                ),
                (
                    "node_disk_io_time_seconds",
                    "Total seconds spent doing I/Os.",
                ),
            ],
            &rows,
        )
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
