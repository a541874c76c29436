//! Gateway mode (`outrigger-proxy gateway`): the cluster's ingress, a Gateway API implementation
//! for the GatewayClass controller name `outrigger.dev/gateway-controller`.
//!
//! Two halves meet at a [`table::Table`] published through a `tokio::sync::watch` channel:
//! - [`controller`] watches the API (GatewayClass, Gateway, HTTPRoute, ReferenceGrant, Service,
//!   EndpointSlice, Secret), builds the table and, on the elected leader, writes status;
//! - the [`dataplane`] binds the table's ports and serves them with the sidecar's HTTP, TLS,
//!   retry, drain and metrics code, balancing over endpoints itself.
//!
//! [`config`] holds the subcommand's flags; [`routes_file`] a static table for runs without the
//! API (tests, the benchmark).

pub mod config;
pub mod controller;
pub mod dataplane;
pub mod routes_file;
pub mod table;
