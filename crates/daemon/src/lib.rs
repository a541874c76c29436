//! What every Outrigger daemon (proxy, agent, injector) does the same way, so each binary only
//! says what differs: the admin listener ([`admin`]: `/live`, `/ready`, `/metrics`), the metrics
//! text formats ([`metrics`]), the command-line contract ([`cli`]: typed flag values, exit 64 with
//! one line naming the setting before any port is bound).

pub mod admin;
pub mod cli;
pub mod metrics;

pub use cli::{ConfigError, EX_USAGE};
