//! The real binaries as child processes: output captured line by line, SIGTERM, bounded waits
//! for exit, for a port and for a log line, and kill-on-drop so no test leaves a process behind.
//! Every wait is a hang guard with a generous limit, never a timing claim.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An unused loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Polls `f` every 20 ms until it is true; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
    let lines = Lines::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// A child process with its stdout and stderr collected; killed on drop.
pub struct Daemon {
    /// The process.
    pub child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and stdout/stderr collected.
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`; returns it.
    pub fn wait_for_stderr(&self, needle: &str, limit: Duration) -> String {
        let mut found = None;
        wait_until(&format!("{needle:?} on stderr"), limit, || {
            found = self.stderr_lines().into_iter().find(|l| l.contains(needle));
            found.is_some()
        });
        found.unwrap_or_default()
    }

    /// Waits until `addr` accepts TCP connections.
    pub fn wait_for_port(&mut self, addr: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "process exited ({status}) before {addr} opened; stderr: {:?}",
                    self.stderr_lines()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{addr} did not open within {limit:?}; stderr: {:?}",
                self.stderr_lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits for the process to exit (hang guard: `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut status = None;
        wait_until("the process to exit", limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
