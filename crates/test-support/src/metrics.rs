//! Metrics as the test suites check them: scrape a daemon's admin port ([`http_get`],
//! [`scrape`]), find one sample in the exposition ([`sample`]), lint it with Debian's
//! `promtool check metrics` ([`promtool_check`]), and a real Prometheus server scraping one
//! target and answering PromQL ([`Prometheus`]).

use std::fmt::Display;
use std::io::{Read as _, Write as _};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::process::{Daemon, free_addr, wait_until};

/// Plain HTTP/1.0 GET with a 10 s read timeout; `(status, body)`, or `None` when the server
/// cannot be reached or answers garbage.
pub fn http_get(addr: impl ToSocketAddrs, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    Some((status, body))
}

/// The exposition a daemon's admin port serves on `GET /metrics` (classic text); panics unless
/// it answers 200.
pub fn scrape(addr: impl ToSocketAddrs + Display) -> String {
    let what = addr.to_string();
    match http_get(addr, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET http://{what}/metrics: {other:?}"),
    }
}

/// The value of the sample `series` (`name` or `name{labels}`, spelled as the exposition spells
/// it) in `text`, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Runs `promtool check metrics` on `exposition`: whether it passed, and what it said (stdout
/// then stderr).
pub fn promtool_check(promtool: &Path, exposition: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

/// Asserts that `promtool check metrics` passes `exposition` without a single remark.
pub fn assert_promtool_clean(promtool: &Path, exposition: &str) {
    let (ok, report) = promtool_check(promtool, exposition);
    assert!(
        ok && report.trim().is_empty(),
        "promtool: {report}\n{exposition}"
    );
}

/// What a PromQL query leaves unescaped in a URL (RFC 3986 unreserved characters).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A real Prometheus server scraping one target every second, killed when dropped (its output
/// is collected, not printed).
pub struct Prometheus {
    _server: Daemon,
    /// Its web address (`host:port`).
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `bin` scraping `target` (`host:port`, path `/metrics`) as job `job`.
    pub fn start(bin: &Path, job: &str, target: impl Display) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_addr().to_string();
        let server = Daemon::spawn(
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}")),
        );
        Self {
            _server: server,
            addr,
            _dir: dir,
        }
    }

    /// The value of the first sample `promql` returns, as Prometheus spells it; `None` while the
    /// server is not up or the query has no result yet.
    pub fn query(&self, promql: &str) -> Option<String> {
        let path = format!("/api/v1/query?query={}", utf8_percent_encode(promql, QUERY));
        let (status, body) = http_get(&*self.addr, &path)?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(v["data"]["result"][0]["value"][1].as_str()?.to_owned())
    }

    /// [`query`](Self::query) as a number.
    pub fn value(&self, promql: &str) -> Option<f64> {
        self.query(promql)?.parse().ok()
    }

    /// Polls `promql` until it returns a sample; panics after `limit` (a hang guard).
    pub fn wait_for_sample(&self, promql: &str, limit: Duration) -> String {
        let mut value = None;
        wait_until(&format!("a sample for {promql}"), limit, || {
            value = self.query(promql);
            value.is_some()
        });
        value.expect("a sample")
    }
}
