//! The real `outrigger-agent` binary as a child process: spawn with test defaults, wait for
//! `/ready`, read metrics, SIGTERM or SIGKILL, and its log.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub metrics_addr: String,
    pub stderr_path: PathBuf,
}

pub use outrigger_test_support::free_port;
use outrigger_test_support::wait_until;

/// The agent's `--help` text (the run must succeed).
pub fn agent_help() -> String {
    let out = std::process::Command::new(agent_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_outrigger-agent")
}

/// The agent with its log root and state dir in `dir` from the environment and nothing else
/// set, as the bad-configuration tests run it.
pub fn agent_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.env_remove("KUBERNETES_SERVICE_HOST")
        .env("OUTRIGGER_STATE_DIR", dir)
        .env("OUTRIGGER_LOG_ROOT", dir);
    cmd
}

impl Agent {
    pub fn spawn(root: &Path, state: &Path, args: &[&str]) -> Agent {
        Self::spawn_env(root, state, args, &[])
    }

    pub fn spawn_env(root: &Path, state: &Path, args: &[&str], envs: &[(&str, &str)]) -> Agent {
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let stderr_path = state.join(format!("agent-{port}.log"));
        // Test defaults, unless the test sets the flag itself.
        let defaults = [
            ("--node-name", "node-a"),
            ("--kube-metadata", "off"),
            ("--batch-max-wait-ms", "100"),
            ("--rotate-grace-ms", "300"),
            ("--retry-min-ms", "50"),
            ("--retry-max-ms", "1000"),
        ];
        let mut cmd = Command::new(agent_bin());
        cmd.env_remove("KUBERNETES_SERVICE_HOST");
        cmd.envs(envs.iter().copied());
        for (k, v) in defaults {
            if !args.contains(&k) {
                cmd.args([k, v]);
            }
        }
        let child = cmd
            .arg("--log-root")
            .arg(root)
            .arg("--state-dir")
            .arg(state)
            .arg("--metrics")
            .arg(&metrics_addr)
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut a = Agent {
            child,
            metrics_addr,
            stderr_path,
        };
        a.wait_ready();
        a
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.metrics_addr, path)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("agent exited ({st}); log:\n{}", self.log());
            }
            if let Some((200, _)) = self.get("/ready") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "agent not ready; log:\n{}",
            fs::read_to_string(&self.stderr_path).unwrap_or_default()
        );
    }

    /// Value of a metric sample line (exact name+labels as rendered).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn sigterm(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let mut status = None;
        wait_until(
            "the agent to exit after SIGTERM",
            Duration::from_secs(30),
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.0 GET over a real socket.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status: u16 = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `f` until true; panics after `secs` (a hang guard, not a timing claim).
pub fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(secs), f);
}
