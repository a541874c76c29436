//! The pure translation from the API objects to the routing [`Table`] and the status every
//! object should have: [`translate`]. No I/O, no clock: the watches feed it a [`Snapshot`], the
//! status writer turns [`Statuses`] into patches.
//!
//! - [`listeners`]: GatewayClasses, Gateways and their listeners (protocol, TLS certificates,
//!   allowed routes, conflicts);
//! - [`routes`]: HTTPRoute attachment (parentRefs, hostnames), backends and the per-listener
//!   virtual hosts;
//! - [`build`]: the table's ports, listeners, virtual hosts and endpoints;
//! - [`rules`]: one HTTPRoute rule's matches, filters and timeouts in table form.

pub mod build;
pub mod listeners;
pub mod routes;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::services::Settings;
use super::types::{GROUP, Gateway, GatewayClass, HttpRoute, ParentRef, ReferenceGrant};
use crate::gateway::table::Table;

/// Every object the translation reads, as the watches last saw them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Our `spec.controllerName`.
    pub controller_name: String,
    /// GatewayClasses (all; ours are picked by controller name).
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: Vec<Arc<Gateway>>,
    /// HTTPRoutes.
    pub routes: Vec<Arc<HttpRoute>>,
    /// ReferenceGrants.
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices.
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Secrets (only `kubernetes.io/tls` ones are used).
    pub secrets: Vec<Arc<Secret>>,
    /// Namespaces (for their labels).
    pub namespaces: Vec<Arc<Namespace>>,
    /// Where and how the Gateways' Services are made (the managed ones are read from
    /// `services`).
    pub service_settings: Settings,
}

/// One status condition, without the time (the writer keeps `lastTransitionTime` stable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// Type (`Accepted`, `Programmed`, ...).
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// Reason.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl Cond {
    /// A condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The conformance features this implementation claims, written (sorted, as the API asks) to
/// each of our GatewayClasses' `status.supportedFeatures`, where the conformance suite reads
/// them when it is not told. The data plane implements each from the table.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "HTTPRouteBackendTimeout",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

/// The status of one GatewayClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStatus {
    /// Name.
    pub name: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Conditions.
    pub conditions: Vec<Cond>,
}

/// The status of one Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Conditions.
    pub conditions: Vec<Cond>,
    /// Addresses.
    pub addresses: Vec<(String, String)>,
    /// Listener statuses in spec order.
    pub listeners: Vec<ListenerStatus>,
}

/// The status of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Kinds of route the listener accepts (only `HTTPRoute` here).
    pub supported_kinds: Vec<&'static str>,
    /// Routes attached.
    pub attached_routes: i64,
    /// Conditions.
    pub conditions: Vec<Cond>,
}

/// The status one HTTPRoute gets from us: one entry per parentRef that is one of our Gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Per parent.
    pub parents: Vec<(ParentRef, Vec<Cond>)>,
}

/// Every status the translation wants written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statuses {
    /// Our GatewayClasses.
    pub classes: Vec<ClassStatus>,
    /// Gateways of our classes.
    pub gateways: Vec<GatewayStatus>,
    /// HTTPRoutes with at least one of our Gateways as parent.
    pub routes: Vec<RouteStatus>,
    /// The Service every Gateway should have (the leader creates or updates them).
    pub services: Vec<Service>,
    /// Managed Services to leave as they are (their Gateway's plan failed); every other managed
    /// Service not in `services` is deleted.
    pub keep_services: Vec<String>,
}

/// Build the table and the statuses from a snapshot.
pub fn translate(snapshot: &Snapshot) -> (Table, Statuses) {
    let index = Index::new(snapshot);
    let mut statuses = Statuses::default();
    let mut gateways = listeners::gateways(&index, &mut statuses);
    let routes = routes::attach(&index, &mut gateways, &mut statuses);
    let table = build::table(&index, &gateways, &routes);
    // Listener statuses carry attachedRoutes, counted by the route pass.
    for gw in &gateways {
        statuses.gateways.push(gw.status());
    }
    (table, statuses)
}

/// Lookups over a snapshot.
pub struct Index<'a> {
    /// The snapshot.
    pub snapshot: &'a Snapshot,
    namespaces: BTreeMap<&'a str, &'a BTreeMap<String, String>>,
}

impl<'a> Index<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let namespaces = snapshot
            .namespaces
            .iter()
            .filter_map(|ns| Some((ns.metadata.name.as_deref()?, ns.metadata.labels.as_ref()?)))
            .collect();
        Self {
            snapshot,
            namespaces,
        }
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .map(|l| (*l).clone())
            .unwrap_or_default()
    }

    /// Whether a ReferenceGrant in `to_ns` lets a `from_kind` (Gateway API group) in `from_ns`
    /// refer to the `to_group`/`to_kind` object `to_name`.
    pub fn granted(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        self.snapshot
            .grants
            .iter()
            .filter(|g| g.metadata.namespace.as_deref() == Some(to_ns))
            .any(|g| {
                g.spec
                    .from
                    .iter()
                    .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
                    && g.spec.to.iter().any(|t| {
                        core_group(&t.group) == core_group(to_group)
                            && t.kind == to_kind
                            && t.name
                                .as_deref()
                                .is_none_or(|n| n.is_empty() || n == to_name)
                    })
            })
    }
}

/// `""` and `"core"` both name the core group.
pub fn core_group(group: &str) -> &str {
    if group == "core" { "" } else { group }
}

/// Whether `labels` satisfy a label selector (an empty selector selects everything).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let expressions_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                // An unknown operator selects nothing rather than everything.
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
pub(crate) mod tests;
