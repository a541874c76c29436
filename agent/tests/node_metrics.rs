//! Node metrics: the real binary against a fixture host root (exact values) and against the real
//! `/`, the output checked by `promtool check metrics`, and scraped by Debian's real Prometheus
//! with PromQL queries returning the expected values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::format_collect,
    clippy::format_push_string
)]

mod common;

use std::fs;
use std::path::Path;

use common::{Agent, Mode, Sink, wait_for};
use outrigger_test_support::{Prometheus, promtool_check, require_tool};

fn fixture(root: &Path) {
    let p = root.join("proc");
    fs::create_dir_all(p.join("net")).unwrap();
    fs::create_dir_all(p.join("1")).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    fs::write(
        p.join("stat"),
        "cpu  300 20 100 5000 10 1 2 3 0 0\n\
         cpu0 123 4 56 2500 7 0 1 2 0 0\n\
         cpu1 177 16 44 2500 3 1 1 1 0 0\n\
         intr 12345\nctxt 999\nbtime 1700000000\nprocesses 42\n",
    )
    .unwrap();
    fs::write(
        p.join("meminfo"),
        "MemTotal:        2048000 kB\nMemFree:          512000 kB\nMemAvailable:    1024000 kB\n\
         Buffers:           10000 kB\nCached:           200000 kB\nSwapCached:            0 kB\n",
    )
    .unwrap();
    fs::write(p.join("loadavg"), "0.50 0.25 0.10 1/234 5678\n").unwrap();
    fs::write(
        p.join("net/dev"),
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
         eth0: 5555555    4000    0    0    0     0          0         0  6666666    3000    0    0    0     0       0          0\n",
    )
    .unwrap();
    fs::write(
        p.join("diskstats"),
        "   8       0 sda 100 0 2048 50 200 0 4096 80 0 1500 130 0 0 0 0\n   \
         8       1 sda1 90 0 2000 40 190 0 4000 70 0 1400 110 0 0 0 0\n   \
         7       0 loop0 1 0 8 0 0 0 0 0 0 4 0 0 0 0 0\n",
    )
    .unwrap();
    fs::write(
        p.join("1/mounts"),
        "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n\
         overlay /var/lib/docker/overlay2/x overlay rw 0 0\n",
    )
    .unwrap();
}

fn body(agent: &Agent) -> String {
    agent.get("/metrics").unwrap().1
}

/// A running agent with what it needs kept alive.
struct Running {
    agent: Agent,
    /// The host root it reads, when not the real `/`.
    host: Option<tempfile::TempDir>,
    _sink: Sink,
    _dirs: [tempfile::TempDir; 2],
}

/// The agent shipping to an accepting sink, reading node metrics from `host` (else `/`).
fn start_agent(host: Option<tempfile::TempDir>) -> Running {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Sink::start(Mode::Accept);
    let loki = sink.loki_url();
    let host_arg = host.as_ref().map(|h| h.path().display().to_string());
    let mut args = vec!["--loki-url", &loki];
    if let Some(h) = &host_arg {
        args.extend(["--host-root", h]);
    }
    let agent = Agent::spawn(logs.path(), state.path(), &args);
    Running {
        agent,
        host,
        _sink: sink,
        _dirs: [logs, state],
    }
}

/// The agent reading the [`fixture`] host root.
fn fixture_agent() -> Running {
    let host = tempfile::tempdir().unwrap();
    fixture(host.path());
    start_agent(Some(host))
}

#[test]
fn node_metrics_from_fixture_host_root() {
    let Running { agent, host, .. } = &fixture_agent();
    let host = host.as_ref().unwrap();
    let b = body(agent);
    for (series, want) in [
        ("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}", 1.23),
        ("node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"}", 25.0),
        ("node_cpu_seconds_total{cpu=\"1\",mode=\"steal\"}", 0.01),
        ("node_memory_MemTotal_bytes", 2_048_000.0 * 1024.0),
        ("node_memory_MemAvailable_bytes", 1_024_000.0 * 1024.0),
        ("node_memory_MemFree_bytes", 512_000.0 * 1024.0),
        ("node_memory_Buffers_bytes", 10_000.0 * 1024.0),
        ("node_memory_Cached_bytes", 200_000.0 * 1024.0),
        ("node_load1", 0.5),
        ("node_load5", 0.25),
        ("node_load15", 0.1),
        ("node_boot_time_seconds", 1_700_000_000.0),
        (
            "node_network_receive_bytes_total{device=\"eth0\"}",
            5_555_555.0,
        ),
        (
            "node_network_transmit_bytes_total{device=\"eth0\"}",
            6_666_666.0,
        ),
        ("node_disk_read_bytes_total{device=\"sda\"}", 2048.0 * 512.0),
        (
            "node_disk_written_bytes_total{device=\"sda\"}",
            4096.0 * 512.0,
        ),
        ("node_disk_io_time_seconds_total{device=\"sda\"}", 1.5),
    ] {
        let v = agent
            .metric(series)
            .unwrap_or_else(|| panic!("{series} missing:\n{b}"));
        assert!((v - want).abs() < 1e-9, "{series} = {v}, want {want}");
    }
    // Partitions, loop devices, aggregate cpu line, pseudo file systems: not exported.
    assert!(!b.contains("device=\"sda1\"") && !b.contains("loop0"));
    assert!(!b.contains("cpu=\"\""));
    assert!(!b.contains("mountpoint=\"/proc\"") && !b.contains("overlay"));
    // Root and /data file systems measured with statvfs under the host root.
    let st = nix::sys::statvfs::statvfs(host.path()).unwrap();
    let size = st.blocks() as f64 * st.fragment_size() as f64;
    let v = agent
        .metric("node_filesystem_size_bytes{device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"}")
        .unwrap();
    assert!((v - size).abs() < 1.0, "{v} vs {size}");
    assert!(agent.metric("node_filesystem_avail_bytes{device=\"/dev/sdb1\",fstype=\"xfs\",mountpoint=\"/data\"}").unwrap() > 0.0);
    let t = agent.metric("node_time_seconds").unwrap();
    assert!(t > 1_700_000_000.0);
}

fn meminfo_total_bytes() -> f64 {
    let s = fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024.0
}

fn cpus_in_proc_stat() -> usize {
    fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

#[test]
fn node_metrics_from_real_root_pass_promtool() {
    let Running { agent, .. } = &start_agent(None);
    let b = body(agent);
    assert_eq!(
        agent.metric("node_memory_MemTotal_bytes"),
        Some(meminfo_total_bytes())
    );
    let idle = b
        .lines()
        .filter(|l| l.starts_with("node_cpu_seconds_total{") && l.contains("mode=\"idle\""))
        .count();
    assert_eq!(idle, cpus_in_proc_stat());
    assert!(b.contains("node_filesystem_size_bytes{"), "{b}");
    assert!(b.contains("node_network_receive_bytes_total{device=\"lo\"}"));
    assert_eq!(
        agent.metric("outrigger_agent_build_info{version=\"0.1.0\"}"),
        Some(1.0)
    );
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    // Strict lint of the agent's own metrics; on the full output the only complaints allowed
    // are node_exporter's own camelCase memory names, which the contract keeps for dashboards.
    let own: String = b
        .lines()
        .filter(|l| l.contains("outrigger_agent_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, text) = promtool_check(&promtool, &own);
    assert!(ok, "promtool check metrics (agent metrics) failed:\n{text}");
    let (_, text) = promtool_check(&promtool, &b);
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            l.starts_with("node_memory_") && l.contains("camelCase"),
            "promtool complaint on node metrics: {l}"
        );
    }
}

#[test]
fn prometheus_scrapes_agent_and_promql_answers() {
    let Some(prom) = require_tool("prometheus") else {
        return;
    };
    let fixture = fixture_agent();
    let server = Prometheus::start(&prom, "agent", &fixture.agent.metrics_addr);
    let promql = |q: &str| server.value(q);
    wait_for("prometheus to scrape the agent", 60, || {
        promql("up{job=\"agent\"}") == Some(1.0)
    });
    assert_eq!(
        promql("node_memory_MemTotal_bytes"),
        Some(2_048_000.0 * 1024.0)
    );
    assert_eq!(
        promql("count(node_cpu_seconds_total{mode=\"idle\"})"),
        Some(2.0)
    );
    assert_eq!(
        promql("sum(node_cpu_seconds_total{mode=\"user\"})"),
        Some(3.0)
    );
    assert_eq!(promql("node_load1"), Some(0.5));
    assert_eq!(
        promql("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"),
        Some(0.5)
    );
    assert_eq!(promql("outrigger_agent_build_info"), Some(1.0));
    assert_eq!(
        promql("outrigger_agent_lines_sent_total{sink=\"loki\"}"),
        Some(0.0)
    );
}
