//! The Gateway API controller: watches the API, builds the [`Table`], writes status.
//!
//! - [`types`]: serde types of the Gateway API kinds;
//! - [`translate`]: the pure translation from objects to table and statuses;
//! - [`watches`]: reflectors for every kind read;
//! - [`leader`]: Lease-based leader election;
//! - [`status`]: the status writer (leader only);
//! - [`services`]: one Service per Gateway (its address) and the internal ports behind it;
//! - `runner`: the main loop ([`run_with_client`]).
//!
//! Every replica watches, builds and publishes the table (all of them serve traffic); only the
//! elected leader writes status and creates, updates and deletes the Gateways' Services.

// Everything that needs kube-rs; without the `gateway` feature only `Options` and a `run`
// that refuses remain, so the data plane compiles either way.
#[cfg(feature = "gateway")]
pub mod leader;
#[cfg(feature = "gateway")]
mod runner;
#[cfg(feature = "gateway")]
pub mod services;
#[cfg(feature = "gateway")]
pub mod status;
#[cfg(feature = "gateway")]
pub mod translate;
#[cfg(feature = "gateway")]
pub mod types;
#[cfg(feature = "gateway")]
pub mod watches;

use std::collections::BTreeMap;
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
    /// Namespace of the gateway pods, where the controller keeps one Service per Gateway
    /// (default: `POD_NAMESPACE`, else the lease namespace).
    #[arg(long, env = "OUTRIGGER_GATEWAY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Labels of the gateway pods (`k=v,...`): the selector of every managed Service.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_POD_SELECTOR",
        default_value = "app.kubernetes.io/component=gateway",
        value_parser = labels
    )]
    pub pod_selector: Labels,
    /// Pod ports (`first-last`) the controller gives each Gateway's listener ports: a
    /// connection's local port names its Gateway.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_INTERNAL_PORTS",
        default_value = "10000-19999",
        value_parser = port_range
    )]
    pub internal_ports: PortRange,
    /// Type of the managed Services.
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_SERVICE_TYPE",
        default_value = "ClusterIP",
        value_parser = ["ClusterIP", "LoadBalancer", "NodePort"]
    )]
    pub gateway_service_type: String,
    /// `externalTrafficPolicy` of managed Services of type LoadBalancer or NodePort (`Local`:
    /// the load balancer sends traffic only to nodes with a Ready gateway pod and keeps the
    /// client address); unset: the API's default (`Cluster`).
    #[arg(
        long,
        env = "OUTRIGGER_GATEWAY_SERVICE_EXTERNAL_TRAFFIC_POLICY",
        value_parser = ["Cluster", "Local"]
    )]
    pub gateway_service_external_traffic_policy: Option<String>,
    /// Annotation (`k=v`, repeatable) of every managed Service; a Gateway's
    /// `spec.infrastructure.annotations` override it.
    #[arg(long = "gateway-service-annotation", value_parser = annotation)]
    pub gateway_service_annotations: Vec<(String, String)>,
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

/// Labels parsed from `k=v,...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

fn annotation(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

fn labels(s: &str) -> Result<Labels, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = annotation(pair)?;
        out.insert(k, v.trim().to_owned());
    }
    if out.is_empty() {
        return Err("the pod selector needs at least one key=value".into());
    }
    Ok(Labels(out))
}

fn port_range(s: &str) -> Result<PortRange, String> {
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port 1..=65535"))
    };
    let (first, last) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not first-last"))?;
    let (first, last) = (parse(first)?, parse(last)?);
    if first > last {
        return Err(format!("{s:?}: first port after last"));
    }
    Ok(PortRange { first, last })
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
