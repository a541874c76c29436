//! One Service per Gateway: each Gateway of ours gets its own address, so Gateways with the same
//! listener port and overlapping hostnames route independently.
//!
//! This module owns the pure part: the Service's name, labels and spec built from a Gateway
//! ([`desired`]), the internal pod ports behind it ([`plan`]) and what the managed Services say
//! ([`managed`]). The Services are the source of truth: every replica reads the internal ports
//! (the Service ports' `targetPort`) from its Service watch and binds them, each holding only
//! its Gateway's listeners, so a connection's local port names its Gateway. Only the leader
//! writes them (the runner's `manage_services`), from the plan the translation returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::types::Gateway;
use super::{Options, PortRange};

/// Label (with value [`MANAGED_BY_VALUE`]) that marks the Services this controller owns; the
/// only ones it ever updates or deletes.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "outrigger-gateway";
/// Label naming the Service's Gateway (the Gateway API's own label for this).
pub const GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";
/// Label naming the Gateway's namespace (the Service lives in the gateway pods' namespace).
pub const GATEWAY_NAMESPACE: &str = "outrigger.dev/gateway-namespace";

/// Annotation listing the other annotations the controller sets (sorted, comma-separated). The
/// watch drops managed fields, so without it an annotation removed from the flags or the Gateway
/// would not count as a difference and would stay; with it, the key list differs and the apply
/// (which removes what the field manager no longer sets) goes out.
pub const ANNOTATIONS: &str = "outrigger.dev/service-annotations";

/// `(namespace, name)` of a Gateway.
pub type GatewayKey = (String, String);

/// Where and how the managed Services are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Namespace of the gateway pods and of the Services.
    pub namespace: String,
    /// Labels of the gateway pods (every Service's selector).
    pub selector: BTreeMap<String, String>,
    /// Internal pod ports to allocate from.
    pub range: PortRange,
    /// `ClusterIP`, `LoadBalancer` or `NodePort`.
    pub type_: String,
    /// Annotations of every Service (a Gateway's infrastructure annotations override them).
    pub annotations: BTreeMap<String, String>,
    /// `externalTrafficPolicy` of LoadBalancer and NodePort Services.
    pub external_traffic_policy: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: "outrigger-system".into(),
            selector: BTreeMap::from([("app.kubernetes.io/component".into(), "gateway".into())]),
            range: PortRange {
                first: 10_000,
                last: 19_999,
            },
            type_: "ClusterIP".into(),
            annotations: BTreeMap::new(),
            external_traffic_policy: None,
        }
    }
}

impl Settings {
    /// From the controller's flags, in the gateway pods' `namespace`.
    pub fn new(namespace: String, options: &Options) -> Self {
        Self {
            namespace,
            selector: options.pod_selector.0.clone(),
            range: options.internal_ports,
            type_: options.gateway_service_type.clone(),
            annotations: options
                .gateway_service_annotations
                .iter()
                .cloned()
                .collect(),
            external_traffic_policy: options.gateway_service_external_traffic_policy.clone(),
        }
    }
}

/// What a managed Service says about its Gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    /// Service name.
    pub name: String,
    /// Listener port -> internal pod port (the Service port's `targetPort`).
    pub ports: BTreeMap<u16, u16>,
    /// Its load-balancer ingress, else its ClusterIP(s): (`IPAddress`|`Hostname`, value).
    pub addresses: Vec<(String, String)>,
}

/// Why a Gateway gets no Service (or keeps the one it has unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A `spec.addresses` entry cannot be honoured: Accepted False `UnsupportedAddress`.
    UnsupportedAddress(String),
    /// The internal port range has no free port: Programmed False `NoResources`.
    Exhausted(String),
}

/// Per Gateway: its listener port -> internal port assignment, or why there is none.
pub type Plan = BTreeMap<GatewayKey, Result<BTreeMap<u16, u16>, PlanError>>;

/// 64-bit FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The Service name of a Gateway: `outrigger-gw-<up to 30 chars of its name>-<8 hex of a hash
/// of namespace/name>`, a DNS-1035 label of at most 52 characters. The hash tells apart
/// Gateways of the same name in different namespaces.
pub fn service_name(namespace: &str, name: &str) -> String {
    let hash = fnv1a(format!("{namespace}/{name}").as_bytes());
    let short: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(30)
        .collect();
    let short = short.trim_matches('-');
    let hash = format!("{:08x}", hash & 0xffff_ffff);
    if short.is_empty() {
        format!("outrigger-gw-{hash}")
    } else {
        format!("outrigger-gw-{short}-{hash}")
    }
}

/// Whether a Service is one of ours in `namespace`.
pub fn is_managed(svc: &Service, namespace: &str) -> bool {
    svc.metadata.namespace.as_deref() == Some(namespace)
        && svc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The managed Services of `namespace`, by Gateway. A Service whose name is not the one
/// [`service_name`] gives its Gateway is ignored (the leader deletes it).
pub fn managed(services: &[Arc<Service>], namespace: &str) -> BTreeMap<GatewayKey, Managed> {
    let mut out = BTreeMap::new();
    for svc in services.iter().filter(|s| is_managed(s, namespace)) {
        let labels = svc.metadata.labels.clone().unwrap_or_default();
        let (Some(gw_ns), Some(gw_name), Some(name)) = (
            labels.get(GATEWAY_NAMESPACE),
            labels.get(GATEWAY_NAME),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if name != service_name(gw_ns, gw_name) {
            continue;
        }
        let ports = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .filter_map(|p| {
                let listener = u16::try_from(p.port).ok()?;
                let target = match p.target_port.as_ref()? {
                    IntOrString::Int(t) => u16::try_from(*t).ok()?,
                    IntOrString::String(_) => return None,
                };
                Some((listener, target))
            })
            .collect();
        out.insert(
            (gw_ns.clone(), gw_name.clone()),
            Managed {
                name: name.to_owned(),
                ports,
                addresses: addresses(svc),
            },
        );
    }
    out
}

/// A Service's load-balancer ingress addresses, else its ClusterIP(s).
pub fn addresses(svc: &Service) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            out.push(("IPAddress".to_owned(), ip.clone()));
        } else if let Some(host) = &i.hostname {
            out.push(("Hostname".to_owned(), host.clone()));
        }
    }
    if out.is_empty() {
        let spec = svc.spec.as_ref();
        let ips = spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default();
        let ips = if ips.is_empty() {
            spec.and_then(|s| s.cluster_ip.clone())
                .into_iter()
                .collect()
        } else {
            ips
        };
        out.extend(
            ips.into_iter()
                .filter(|ip| !ip.is_empty() && ip != "None")
                .map(|ip| ("IPAddress".to_owned(), ip)),
        );
    }
    out
}

/// The distinct ports of a Gateway's HTTP and HTTPS listeners (the others are never served).
pub fn listener_ports(gw: &Gateway) -> BTreeSet<u16> {
    gw.spec
        .listeners
        .iter()
        .filter(|l| matches!(l.protocol.as_str(), "HTTP" | "HTTPS"))
        .filter_map(|l| u16::try_from(l.port).ok().filter(|p| *p > 0))
        .collect()
}

/// The IP a Gateway asks for, or why its `spec.addresses` cannot be honoured with Services of
/// type `type_`: one `IPAddress` at most (a Service has one ClusterIP or load-balancer IP).
pub fn requested_ip(gw: &Gateway, type_: &str) -> Result<Option<IpAddr>, String> {
    let mut ip = None;
    for a in &gw.spec.addresses {
        let kind = a.type_.as_deref().unwrap_or("IPAddress");
        if kind != "IPAddress" {
            return Err(format!("address type {kind} is not supported"));
        }
        let parsed: IpAddr = a
            .value
            .parse()
            .map_err(|_| format!("{:?} is not an IP address", a.value))?;
        if ip.replace(parsed).is_some() {
            return Err("at most one address is supported".into());
        }
    }
    if ip.is_some() && type_ == "NodePort" {
        return Err("Services of type NodePort take no requested address".into());
    }
    Ok(ip)
}

/// Assign internal ports to every Gateway (`gateways` oldest first, so an older Gateway keeps
/// its ports when two Services claim the same one). A port the Gateway's Service already has
/// is kept; a new listener port gets the lowest free port of the range.
pub fn plan(
    gateways: &[&Gateway],
    managed: &BTreeMap<GatewayKey, Managed>,
    settings: &Settings,
) -> Plan {
    let range = settings.range;
    let in_range = |p: u16| (range.first..=range.last).contains(&p);
    let mut used: BTreeSet<u16> = BTreeSet::new();
    let mut kept: BTreeMap<GatewayKey, BTreeMap<u16, u16>> = BTreeMap::new();
    let mut out = Plan::new();
    let key = |g: &Gateway| {
        (
            g.metadata.namespace.clone().unwrap_or_default(),
            g.metadata.name.clone().unwrap_or_default(),
        )
    };
    // First what the Services already hold, so that no Gateway's port moves for another's.
    for gw in gateways {
        let k = key(gw);
        if let Err(e) = requested_ip(gw, &settings.type_) {
            out.insert(k, Err(PlanError::UnsupportedAddress(e)));
            continue;
        }
        let wanted = listener_ports(gw);
        let mut ports = BTreeMap::new();
        for (listener, target) in managed.get(&k).map(|m| &m.ports).into_iter().flatten() {
            if wanted.contains(listener) && in_range(*target) && used.insert(*target) {
                ports.insert(*listener, *target);
            }
        }
        kept.insert(k, ports);
    }
    let mut next = range.first;
    for gw in gateways {
        let k = key(gw);
        let Some(mut ports) = kept.remove(&k) else {
            continue;
        };
        let mut missing = 0;
        for listener in listener_ports(gw) {
            if ports.contains_key(&listener) {
                continue;
            }
            while used.contains(&next) && next < range.last {
                next += 1;
            }
            if used.contains(&next) || !in_range(next) {
                missing += 1;
                continue;
            }
            used.insert(next);
            ports.insert(listener, next);
        }
        let planned = if missing > 0 {
            Err(PlanError::Exhausted(format!(
                "no free internal port in {}-{} for {missing} listener port(s)",
                range.first, range.last
            )))
        } else {
            Ok(ports)
        };
        out.insert(k, planned);
    }
    out
}

/// The Service of a Gateway with the planned `ports`.
pub fn desired(gw: &Gateway, ports: &BTreeMap<u16, u16>, settings: &Settings) -> Service {
    let ns = gw.metadata.namespace.clone().unwrap_or_default();
    let name = gw.metadata.name.clone().unwrap_or_default();
    let infra = gw.spec.infrastructure.clone().unwrap_or_default();
    let mut labels = infra.labels;
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(GATEWAY_NAME.into(), name.clone());
    labels.insert(GATEWAY_NAMESPACE.into(), ns.clone());
    let mut annotations = settings.annotations.clone();
    annotations.extend(infra.annotations);
    annotations.remove(ANNOTATIONS);
    let keys: Vec<&str> = annotations.keys().map(String::as_str).collect();
    let keys = keys.join(",");
    annotations.insert(ANNOTATIONS.into(), keys);
    let ip = requested_ip(gw, &settings.type_).ok().flatten();
    let ip = ip.map(|ip| ip.to_string());
    let cluster_ip = ip.clone().filter(|_| settings.type_ == "ClusterIP");
    let load_balancer_ip = ip.filter(|_| settings.type_ == "LoadBalancer");
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(&ns, &name)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(settings.type_.clone()),
            selector: Some(settings.selector.clone()),
            cluster_ip,
            load_balancer_ip,
            external_traffic_policy: settings
                .external_traffic_policy
                .clone()
                .filter(|_| settings.type_ != "ClusterIP"),
            ports: Some(
                ports
                    .iter()
                    .map(|(listener, target)| ServicePort {
                        name: Some(format!("port-{listener}")),
                        port: i32::from(*listener),
                        target_port: Some(IntOrString::Int(i32::from(*target))),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Whether `existing` must be deleted and created again to become `desired` (a ClusterIP
/// cannot change in place).
pub fn needs_recreate(existing: &Service, desired: &Service) -> bool {
    let want = desired.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    let have = existing.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    want.is_some() && want != have
}

/// Whether `existing` differs from `desired` in anything this controller sets.
pub fn needs_update(existing: &Service, desired: &Service) -> bool {
    let subset = |want: Option<&BTreeMap<String, String>>,
                  have: Option<&BTreeMap<String, String>>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    };
    let (Some(want), Some(have)) = (desired.spec.as_ref(), existing.spec.as_ref()) else {
        return true;
    };
    let ports = |s: &ServiceSpec| {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port, p.target_port.clone()))
            .collect::<Vec<_>>()
    };
    !subset(
        desired.metadata.labels.as_ref(),
        existing.metadata.labels.as_ref(),
    ) || !subset(
        desired.metadata.annotations.as_ref(),
        existing.metadata.annotations.as_ref(),
    ) || want.type_ != have.type_
        || want.selector != have.selector
        || ports(want) != ports(have)
        || (want.load_balancer_ip.is_some() && want.load_balancer_ip != have.load_balancer_ip)
        || (want.external_traffic_policy.is_some()
            && want.external_traffic_policy != have.external_traffic_policy)
}

#[cfg(test)]
mod tests;
