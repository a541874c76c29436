//! The Gateway API controller: watches the API, builds the [`Table`], writes status.
//!
//! - [`types`]: serde types of the Gateway API kinds;
//! - [`translate`]: the pure translation from objects to table and statuses;
//! - [`watches`]: reflectors for every kind read;
//! - [`leader`]: Lease-based leader election;
//! - [`status`]: the status writer (leader only);
//! - `runner`: the main loop ([`run_with_client`]).
//!
//! Every replica watches, builds and publishes the table (all of them serve traffic); only the
//! elected leader writes status.

// Everything that needs kube-rs; without the `gateway` feature only `Options` and a `run`
// that refuses remain, so the data plane compiles either way.
#[cfg(feature = "gateway")]
pub mod leader;
#[cfg(feature = "gateway")]
mod runner;
#[cfg(feature = "gateway")]
pub mod status;
#[cfg(feature = "gateway")]
pub mod translate;
#[cfg(feature = "gateway")]
pub mod types;
#[cfg(feature = "gateway")]
pub mod watches;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use super::table::Table;
#[cfg(feature = "gateway")]
pub use runner::run_with_client;

/// Controller settings (flattened into `outrigger-proxy gateway`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// GatewayClass `spec.controllerName` this gateway implements.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_CONTROLLER_NAME",
        default_value = "outrigger.dev/gateway-controller"
    )]
    pub controller_name: String,
    /// `namespace/name` of the Service in front of the gateway pods: its load-balancer address
    /// (else its ClusterIP) is written to each Gateway's `status.addresses`.
    #[arg(long, env = "OUTRIGGER_GATEWAY_SERVICE")]
    pub service: Option<String>,
    /// Namespace of the Lease used for leader election (only the leader writes status).
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_LEASE_NAMESPACE",
        default_value = "outrigger-system"
    )]
    pub lease_namespace: String,
    /// Name of that Lease.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_LEASE_NAME",
        default_value = "outrigger-gateway"
    )]
    pub lease_name: String,
}

/// Watch the API and publish a new table on every change until `shutdown` resolves.
// Without the controller nothing is awaited, but the signature is the data plane's contract.
#[cfg_attr(not(feature = "gateway"), allow(clippy::unused_async))]
pub async fn run(
    options: Options,
    tables: watch::Sender<Arc<Table>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    #[cfg(feature = "gateway")]
    {
        use anyhow::Context as _;
        let client = kube::Client::try_default()
            .await
            .context("gateway controller: Kubernetes client")?;
        run_with_client(options, client, leader::identity(), tables, shutdown).await;
        Ok(())
    }
    #[cfg(not(feature = "gateway"))]
    {
        let _ = (options, tables, shutdown);
        anyhow::bail!("outrigger-proxy was built without the `gateway` feature: use --routes-file")
    }
}
