//! Shared test harness for the agent's suites: an in-test HTTP sink ([`sink`]), kubelet-style CRI
//! log writers ([`logs`]), the real `outrigger-agent` binary as a child process ([`agent`]) and
//! the three put together for one test ([`rig`]); any test server runs on a thread of its own
//! ([`serve`]).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::format_push_string,
    clippy::unused_self,
    clippy::ref_option
)]

pub mod agent;
pub mod logs;
pub mod rig;
pub mod serve;
pub mod sink;

#[allow(unused_imports)] // each suite uses a part
pub use self::{
    agent::{Agent, agent_bin, agent_cmd, agent_help, free_port, http_get, wait_for},
    logs::{Container, rfc3339_at, rfc3339_now},
    rig::{Rig, lines_of, msgs},
    serve::{http1_conn, serve_in_thread},
    sink::{Got, Mode, Sink, SinkState, per_stream},
};
