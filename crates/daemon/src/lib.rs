//! What every Outrigger daemon (proxy, agent, injector) does the same way, so each binary only
//! says what differs: the admin listener ([`admin`]: `/live`, `/ready`, `/metrics`), the metrics
//! text formats ([`metrics`]), the command-line contract ([`cli`]: typed flag values, exit 64 with
//! one line naming the setting before any port is bound), and the start and end of `main`
//! ([`start`]: logging, runtime, listeners, signals, exit status).

pub mod admin;
pub mod cli;
pub mod metrics;
pub mod start;

pub use cli::{ConfigError, EX_USAGE};
