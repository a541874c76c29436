//! One test's world in a line: a temp log root, a state dir and an in-test sink, with the agent
//! started against them and the lines each container stream received.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use super::{Agent, Container, Got, Mode, Sink, per_stream};

/// Lines numbered over `r`, tagged `tag`, padded so batches fill in a predictable way.
pub fn msgs(tag: &str, r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| format!("{tag} line {i:06} {}", "x".repeat(40)))
        .collect()
}

/// A temp log root and state dir and a sink answering as `mode`.
pub struct Rig {
    pub root: TempDir,
    pub state: TempDir,
    pub sink: Sink,
}

impl Rig {
    pub fn new(mode: Mode) -> Rig {
        Rig::with_sink(Sink::start(mode))
    }

    /// Around a sink started otherwise (e.g. behind TLS).
    pub fn with_sink(sink: Sink) -> Rig {
        Rig {
            root: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            sink,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn state(&self) -> &Path {
        self.state.path()
    }

    /// A container log directory under the root.
    pub fn container(&self, ns: &str, pod: &str, name: &str) -> Container {
        Container::new(self.root(), ns, pod, name)
    }

    /// Container `app` of pod `pod` in namespace `ns`, its stdout already holding `lines`.
    pub fn app_with(&self, pod: &str, lines: &[String]) -> Container {
        let c = self.container("ns", pod, "app");
        c.write("stdout", lines);
        c
    }

    /// The agent shipping to the sink's Loki endpoint, plus `extra` flags.
    pub fn agent(&self, extra: &[&str]) -> Agent {
        self.agent_env(extra, &[])
    }

    /// [`Rig::agent`] with environment variables.
    pub fn agent_env(&self, extra: &[&str], envs: &[(&str, &str)]) -> Agent {
        let url = self.sink.loki_url();
        let mut args = vec!["--loki-url", url.as_str()];
        args.extend_from_slice(extra);
        Agent::spawn_env(self.root(), self.state(), &args, envs)
    }

    /// Offset of the first file in the checkpoint (`None`: no checkpoint written yet).
    pub fn checkpoint_offset(&self) -> Option<u64> {
        fs::read(self.state().join("checkpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["files"][0]["offset"].as_u64())
    }

    /// The sink received `want` from `c`'s `stream`, in order, and nothing else: exactly once.
    pub fn assert_exactly(&self, c: &Container, stream: &str, want: &[String]) {
        let got = self.sink.entries();
        assert_eq!(got.len(), want.len(), "exactly once");
        assert_eq!(lines_of(&got, c, stream), want);
    }

    /// What the sink received from `c`'s `stream`, in order.
    pub fn lines(&self, c: &Container, stream: &str) -> Vec<String> {
        lines_of(&self.sink.entries(), c, stream)
    }
}

/// The lines of `c`'s `stream` among `entries`, in order (none: empty).
pub fn lines_of(entries: &[Got], c: &Container, stream: &str) -> Vec<String> {
    per_stream(entries)
        .remove(&(c.pod.clone(), c.name.clone(), stream.to_owned()))
        .unwrap_or_default()
}
