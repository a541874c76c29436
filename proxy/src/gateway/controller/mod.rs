//! The Gateway API controller: watches the API, builds the [`Table`], writes status.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use super::table::Table;

/// Controller settings (flattened into `outrigger-proxy gateway`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// GatewayClass `spec.controllerName` this gateway implements.
    #[arg(long, env = "OUTRIGGER_GATEWAY_CONTROLLER_NAME", default_value = "outrigger.dev/gateway-controller")]
    pub controller_name: String,
    /// `namespace/name` of the Service in front of the gateway pods: its load-balancer address
    /// (else its ClusterIP) is written to each Gateway's `status.addresses`.
    #[arg(long, env = "OUTRIGGER_GATEWAY_SERVICE")]
    pub service: Option<String>,
    /// Namespace of the Lease used for leader election (only the leader writes status).
    #[arg(long, env = "OUTRIGGER_GATEWAY_LEASE_NAMESPACE", default_value = "outrigger-system")]
    pub lease_namespace: String,
    /// Name of that Lease.
    #[arg(long, env = "OUTRIGGER_GATEWAY_LEASE_NAME", default_value = "outrigger-gateway")]
    pub lease_name: String,
}

/// Watch the API and publish a new table on every change until `shutdown` resolves.
pub async fn run(
    options: Options,
    tables: watch::Sender<Arc<Table>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let _ = (options, tables, shutdown);
    anyhow::bail!("the Gateway API controller is not built yet")
}
