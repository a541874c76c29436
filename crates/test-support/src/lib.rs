//! Dev-only helpers shared by the proxy, agent and injector test suites: one throw-away test PKI
//! ([`pki`]), the real binaries as child processes and bounded wait loops ([`process`]), scraping
//! and checking `/metrics` with a real Prometheus ([`metrics`]), a daemon's usage-error exit
//! ([`cli`]), the policy for tests that need an external tool ([`tools`]: fail in CI, skip
//! loudly elsewhere), and a real kube-apiserver ([`kube_env`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod kube_env;
pub mod metrics;
pub mod pki;
pub mod process;
pub mod tools;

pub use kube_env::KubeTestEnv;
pub use metrics::{Prometheus, assert_promtool_clean, promtool_check, sample, scrape};
pub use pki::Pki;
pub use process::{Daemon, free_addr, free_port, wait_until};
pub use tools::{find_tool, repo_root, require_tool, skip};
