//! `outrigger-proxy gateway`'s flags: the gateway's own (each with an `OUTRIGGER_GATEWAY_*`
//! twin), the sidecar's request-path group ([`CommonArgs`], the same flags and variables) and the
//! controller's [`controller::Options`], validated into a [`GatewayConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use outrigger_daemon::cli::{self as parse, ValueError};

use crate::config::{CommonArgs, Config, ConfigError, Listeners, Strings};
use crate::gateway::controller;
use crate::gateway::routes_file;
use crate::gateway::table::Table;

/// Gateway mode: serves the Gateway API routing table (from the controller, or from
/// `--routes-file`) on the ports it lists.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address the table's listener ports are bound on.
    #[arg(long, env = "OUTRIGGER_GATEWAY_BIND_ADDRESS", default_value = "0.0.0.0", value_parser = ip_addr)]
    pub bind_address: IpAddr,
    /// Admin listener: GET /live, GET /ready (a table is loaded and not draining), GET /metrics.
    #[arg(long, env = "OUTRIGGER_GATEWAY_ADMIN", default_value = "0.0.0.0:4191", value_parser = parse::socket_addr)]
    pub admin: SocketAddr,
    /// A static routing table (JSON, see docs/gateway.md); when set, no controller runs.
    #[arg(long, env = "OUTRIGGER_GATEWAY_ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// Consecutive 5xx answers or connect errors that eject an endpoint, 1..=1000.
    #[arg(long, env = "OUTRIGGER_GATEWAY_EJECT_AFTER", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub eject_after: u32,
    /// First ejection period of an endpoint; each further ejection doubles it.
    #[arg(long, env = "OUTRIGGER_GATEWAY_EJECTION", default_value = "30s", value_parser = parse::positive_duration)]
    pub ejection: Duration,
    /// Longest ejection period.
    #[arg(long, env = "OUTRIGGER_GATEWAY_MAX_EJECTION", default_value = "5m", value_parser = parse::positive_duration)]
    pub max_ejection: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub controller: controller::Options,
}

fn ip_addr(s: &str) -> Result<IpAddr, ValueError> {
    s.parse()
        .map_err(|_| ValueError::new(format!("{s:?} is not an IP address")))
}

/// Endpoint balancing settings.
#[derive(Debug, Clone, Copy)]
pub struct Balancing {
    /// Consecutive failures before an ejection.
    pub eject_after: u32,
    /// First ejection period.
    pub ejection: Duration,
    /// Cap of the doubling ejection period.
    pub max_ejection: Duration,
}

impl Default for Balancing {
    fn default() -> Self {
        Self {
            eject_after: 5,
            ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// Where the table comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--routes-file`, loaded (and validated) before any port is bound.
    Static(Arc<Table>),
    /// The Gateway API controller.
    Controller(controller::Options),
}

/// Validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The shared request-path settings (`inbound`, `app` and `tls` are unused).
    pub config: Config,
    /// Address the table's ports are bound on.
    pub bind_address: IpAddr,
    /// Endpoint balancing.
    pub balancing: Balancing,
    /// The table's source.
    pub source: Source,
}

impl GatewayConfig {
    /// Validate `args`; a routes file that does not load is a configuration error (exit 64).
    pub fn from_args(args: GatewayArgs, env: &dyn Strings) -> Result<Self, ConfigError> {
        if args.ejection > args.max_ejection {
            return Err(ConfigError::new(
                "--max-ejection (OUTRIGGER_GATEWAY_MAX_EJECTION)",
                "must not be shorter than --ejection",
            ));
        }
        let source = match &args.routes_file {
            Some(path) => Source::Static(Arc::new(routes_file::load(path).map_err(|e| {
                ConfigError::new(
                    "--routes-file (OUTRIGGER_GATEWAY_ROUTES_FILE)",
                    format!("{}: {e}", path.display()),
                )
            })?)),
            None => Source::Controller(args.controller.clone()),
        };
        let config = Config::assemble(
            Listeners {
                inbound: SocketAddr::new(args.bind_address, 0),
                app: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: args.admin,
                tls: None,
                drain_token: None,
            },
            args.common,
            env,
        )?;
        Ok(Self {
            config,
            bind_address: args.bind_address,
            balancing: Balancing {
                eject_after: args.eject_after,
                ejection: args.ejection,
                max_ejection: args.max_ejection,
            },
            source,
        })
    }
}
