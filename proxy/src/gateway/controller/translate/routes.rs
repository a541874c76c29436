//! HTTPRoutes: attachment to our listeners (parentRef section name and port, allowed
//! namespaces and kinds, hostname intersection), backendRef resolution, their status, and the
//! table's ports, virtual hosts and rules in precedence order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::listeners::{Attached, From, GatewayState, HTTP_ROUTE, ListenerState};
use super::rules::{self, RuleParts};
use super::{Cond, Index, RouteStatus, Statuses, core_group, selector_matches};
use crate::gateway::controller::types::{GROUP, HttpBackendRef, HttpRoute};
use crate::gateway::table::{
    Backend, BackendKey, Endpoint, Hostname, Listener, PathMatch, Port, Protocol, Rule, Table,
    VirtualHost, WeightedBackend,
};

/// An HTTPRoute's rules in table form (those that could be converted), ready to attach.
#[derive(Debug)]
pub struct CompiledRoute<'a> {
    /// The route.
    pub route: &'a HttpRoute,
    /// `namespace/name`.
    pub key: Arc<str>,
    /// (rule index, parts, backends).
    pub rules: Vec<(usize, RuleParts, Vec<WeightedBackend>)>,
}

/// Why a backendRef does not resolve: `ResolvedRefs` False reason and message.
type Unresolved = (&'static str, String);

fn backend(index: &Index<'_>, route_ns: &str, r: &HttpBackendRef) -> (Backend, Option<Unresolved>) {
    let group = core_group(r.group.as_deref().unwrap_or(""));
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return (
            Backend::Invalid,
            Some((
                "InvalidKind",
                format!("backend kind {group}/{kind} is not supported"),
            )),
        );
    }
    let ns = r.namespace.as_deref().unwrap_or(route_ns);
    if ns != route_ns && !index.granted(HTTP_ROUTE, route_ns, "", "Service", ns, &r.name) {
        return (
            Backend::Invalid,
            Some((
                "RefNotPermitted",
                format!("no ReferenceGrant allows Service {ns}/{}", r.name),
            )),
        );
    }
    let Some(port) = r
        .port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
    else {
        return (
            Backend::Invalid,
            Some((
                "BackendNotFound",
                format!("backendRef {ns}/{} has no valid port", r.name),
            )),
        );
    };
    let service = index.snapshot.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.metadata.name.as_deref() == Some(r.name.as_str())
    });
    let Some(service) = service else {
        return (
            Backend::Invalid,
            Some((
                "BackendNotFound",
                format!("Service {ns}/{} not found", r.name),
            )),
        );
    };
    let has_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|ports| ports.iter().any(|p| i64::from(p.port) == i64::from(port)));
    if !has_port {
        return (
            Backend::Invalid,
            Some((
                "BackendNotFound",
                format!("Service {ns}/{} has no port {port}", r.name),
            )),
        );
    }
    let key = BackendKey {
        namespace: ns.into(),
        name: r.name.as_str().into(),
        port,
    };
    (Backend::Service(key), None)
}

fn compile<'a>(
    index: &Index<'_>,
    route: &'a HttpRoute,
) -> (CompiledRoute<'a>, Vec<String>, Option<Unresolved>) {
    let ns = route.metadata.namespace.as_deref().unwrap_or_default();
    let key: Arc<str> = format!(
        "{ns}/{}",
        route.metadata.name.as_deref().unwrap_or_default()
    )
    .into();
    let mut compiled = Vec::new();
    let mut dropped = Vec::new();
    let mut unresolved = None;
    let default_rule = [crate::gateway::controller::types::HttpRouteRule::default()];
    // The CRD defaults an absent rule list to one rule matching everything with no backend.
    let rule_specs = if route.spec.rules.is_empty() {
        &default_rule[..]
    } else {
        &route.spec.rules[..]
    };
    for (i, rule) in rule_specs.iter().enumerate() {
        let parts = match rules::rule_parts(rule) {
            Ok(p) => p,
            Err(e) => {
                dropped.push(format!("rule {i}: {e}"));
                continue;
            }
        };
        let mut backends = Vec::with_capacity(rule.backend_refs.len());
        let mut bad_filter = None;
        for r in &rule.backend_refs {
            let (b, why) = backend(index, ns, r);
            if unresolved.is_none() {
                unresolved = why;
            }
            match rules::filters(&r.filters) {
                Ok(filters) => backends.push(WeightedBackend {
                    weight: u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0),
                    backend: b,
                    filters,
                }),
                Err(e) => bad_filter = Some(e),
            }
        }
        if let Some(e) = bad_filter {
            dropped.push(format!("rule {i}: {e}"));
            continue;
        }
        compiled.push((i, parts, backends));
    }
    (
        CompiledRoute {
            route,
            key,
            rules: compiled,
        },
        dropped,
        unresolved,
    )
}

/// The hostnames a route serves on a listener; `None` when they do not intersect.
pub fn intersect(listener: Option<&Hostname>, route: &[String]) -> Option<Vec<Option<Hostname>>> {
    let route: Vec<Hostname> = route
        .iter()
        .filter_map(|h| super::listeners::parse_hostname(h))
        .collect();
    if route.is_empty() {
        return Some(vec![listener.cloned()]);
    }
    let Some(listener) = listener else {
        return Some(route.into_iter().map(Some).collect());
    };
    let covers = |wild: &str, host: &str| host.len() > wild.len() && host.ends_with(wild);
    let out: Vec<Option<Hostname>> = route
        .into_iter()
        .filter_map(|r| match (listener, &r) {
            (Hostname::Exact(l), Hostname::Exact(h)) => (l == h).then(|| r.clone()),
            (Hostname::Exact(l), Hostname::Wildcard(w)) => covers(w, l).then(|| listener.clone()),
            (Hostname::Wildcard(w), Hostname::Exact(h)) => covers(w, h).then(|| r.clone()),
            (Hostname::Wildcard(l), Hostname::Wildcard(h)) => {
                if h.ends_with(&**l) {
                    Some(r.clone())
                } else if l.ends_with(&**h) {
                    Some(listener.clone())
                } else {
                    None
                }
            }
        })
        .map(Some)
        .collect();
    let mut dedup = Vec::new();
    for h in out {
        if !dedup.contains(&h) {
            dedup.push(h);
        }
    }
    (!dedup.is_empty()).then_some(dedup)
}

fn allows(
    index: &Index<'_>,
    listener: &ListenerState<'_>,
    gateway_ns: &str,
    route_ns: &str,
) -> bool {
    if !listener.supported_kinds.contains(&HTTP_ROUTE) {
        return false;
    }
    match &listener.from {
        From::Same => gateway_ns == route_ns,
        From::All => true,
        From::Selector(selector) => selector_matches(selector, &index.namespace_labels(route_ns)),
    }
}

/// Attach every HTTPRoute to our listeners and record the route statuses; returns the
/// compiled routes the listeners' [`Attached`] entries point at.
pub fn attach<'a>(
    index: &Index<'a>,
    gateways: &mut [GatewayState<'a>],
    statuses: &mut Statuses,
) -> BTreeMap<Arc<str>, CompiledRoute<'a>> {
    let mut compiled_routes = BTreeMap::new();
    for route in &index.snapshot.routes {
        let route: &'a HttpRoute = route;
        if route.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(route_ns), Some(route_name)) = (
            route.metadata.namespace.clone(),
            route.metadata.name.clone(),
        ) else {
            continue;
        };
        let (compiled, dropped, unresolved) = compile(index, route);
        let mut parents = Vec::new();
        for parent in &route.spec.parent_refs {
            if parent.group.as_deref().unwrap_or(GROUP) != GROUP
                || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway"
            {
                continue;
            }
            let gw_ns = parent.namespace.as_deref().unwrap_or(&route_ns);
            let Some(gw) = gateways
                .iter_mut()
                .find(|g| g.namespace == gw_ns && g.name == parent.name)
            else {
                continue;
            };
            let gateway_ns = gw.namespace.clone();
            let mut candidates: Vec<&mut ListenerState<'a>> = gw
                .listeners
                .iter_mut()
                .filter(|l| {
                    parent
                        .section_name
                        .as_deref()
                        .is_none_or(|s| s == l.spec.name)
                })
                .filter(|l| parent.port.is_none_or(|p| p == l.spec.port))
                .collect();
            let accepted = if candidates.is_empty() {
                Cond::new(
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    "no listener matches the parentRef's sectionName/port",
                )
            } else {
                candidates.retain(|l| allows(index, l, &gateway_ns, &route_ns));
                if candidates.is_empty() {
                    Cond::new(
                        "Accepted",
                        false,
                        "NotAllowedByListeners",
                        "no listener allows this route",
                    )
                } else if compiled.rules.is_empty() && !dropped.is_empty() {
                    Cond::new("Accepted", false, "UnsupportedValue", dropped.join("; "))
                } else {
                    let mut any = false;
                    for l in candidates {
                        if let Some(hostnames) =
                            intersect(l.hostname.as_ref(), &route.spec.hostnames)
                        {
                            l.attached.push(Attached { route, hostnames });
                            any = true;
                        }
                    }
                    if any {
                        Cond::new("Accepted", true, "Accepted", "route accepted")
                    } else {
                        Cond::new(
                            "Accepted",
                            false,
                            "NoMatchingListenerHostname",
                            "no listener hostname matches the route's hostnames",
                        )
                    }
                }
            };
            let resolved = match &unresolved {
                Some((reason, msg)) => Cond::new("ResolvedRefs", false, reason, msg.clone()),
                None => Cond::new("ResolvedRefs", true, "ResolvedRefs", "references resolved"),
            };
            let mut conditions = vec![accepted, resolved];
            if !dropped.is_empty() && !compiled.rules.is_empty() {
                conditions.push(Cond::new(
                    "PartiallyInvalid",
                    true,
                    "UnsupportedValue",
                    dropped.join("; "),
                ));
            }
            parents.push((parent.clone(), conditions));
        }
        if !parents.is_empty() {
            statuses.routes.push(RouteStatus {
                namespace: route_ns,
                name: route_name,
                generation: route.metadata.generation,
                parents,
            });
        }
        compiled_routes.insert(compiled.key.clone(), compiled);
    }
    compiled_routes
}

/// Sort key of a virtual host's hostname.
type HostKey = (u8, Reverse<usize>, Option<Hostname>);

/// Most specific first: exact names, then longer wildcard suffixes, then the catch-all.
fn specificity(h: Option<&Hostname>) -> HostKey {
    match h {
        Some(Hostname::Exact(n)) => (0, Reverse(n.len()), h.cloned()),
        Some(Hostname::Wildcard(s)) => (1, Reverse(s.len()), h.cloned()),
        None => (2, Reverse(0), None),
    }
}

/// Whether a virtual host for `general` also serves requests for `specific`.
fn covers(general: Option<&Hostname>, specific: Option<&Hostname>) -> bool {
    match (general, specific) {
        (None, _) => true,
        (Some(Hostname::Wildcard(w)), Some(Hostname::Exact(h) | Hostname::Wildcard(h))) => {
            h.len() > w.len() && h.ends_with(&**w)
        }
        _ => false,
    }
}

type PrecedenceKey = (
    u8,
    Reverse<usize>,
    Reverse<bool>,
    Reverse<usize>,
    Reverse<usize>,
    Option<k8s_openapi::jiff::Timestamp>,
    Arc<str>,
    usize,
    usize,
);

fn precedence(
    route: &CompiledRoute<'_>,
    rule_index: usize,
    match_index: usize,
    m: &crate::gateway::table::RouteMatch,
) -> PrecedenceKey {
    let (rank, len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::RegularExpression(r) => (1, r.as_str().len()),
        PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
    };
    (
        rank,
        Reverse(len),
        Reverse(m.method.is_some()),
        Reverse(m.headers.len()),
        Reverse(m.query.len()),
        route
            .route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0),
        route.key.clone(),
        rule_index,
        match_index,
    )
}

/// Build the table from the programmed listeners and their attached routes.
pub fn table(
    index: &Index<'_>,
    gateways: &[GatewayState<'_>],
    routes: &BTreeMap<Arc<str>, CompiledRoute<'_>>,
) -> Table {
    // All Gateways share the gateway's address, so listeners of several Gateways with the
    // same port and hostname are one listener here: it serves the routes of all of them (the
    // oldest Gateway's listener gives its name and its certificates come first).
    let mut merged: BTreeMap<(u16, HostKey), (Protocol, Listener, Vec<&Attached<'_>>)> =
        BTreeMap::new();
    let mut protocols: BTreeMap<u16, Protocol> = BTreeMap::new();
    for gw in gateways {
        for l in gw.listeners.iter().filter(|l| l.programmed()) {
            let Some(protocol) = l.protocol else { continue };
            if *protocols.entry(l.port).or_insert(protocol) != protocol {
                // Another (older) Gateway has this port with the other protocol.
                tracing::warn!(gateway = %format!("{}/{}", gw.namespace, gw.name), listener = %l.spec.name, port = l.port, "port already used with another protocol; listener not served");
                continue;
            }
            let (_, listener, attached) = merged
                .entry((l.port, specificity(l.hostname.as_ref())))
                .or_insert_with(|| {
                    let name = format!("{}/{}/{}", gw.namespace, gw.name, l.spec.name);
                    let listener = Listener {
                        name: name.into(),
                        hostname: l.hostname.clone(),
                        certificates: Vec::new(),
                        virtual_hosts: Vec::new(),
                    };
                    (protocol, listener, Vec::new())
                });
            listener.certificates.extend(l.certificates.iter().cloned());
            attached.extend(&l.attached);
        }
    }
    let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
    // Keys sort by port, then most specific hostname first: the order the data plane wants.
    for ((port, _), (protocol, mut listener, attached)) in merged {
        listener.virtual_hosts = virtual_hosts(routes, &attached);
        ports
            .entry(port)
            .or_insert_with(|| Port {
                port,
                protocol,
                listeners: Vec::new(),
            })
            .listeners
            .push(listener);
    }
    let mut table = Table {
        ports: ports.into_values().collect(),
        endpoints: BTreeMap::new(),
    };
    let keys: BTreeSet<BackendKey> = table
        .ports
        .iter()
        .flat_map(|p| &p.listeners)
        .flat_map(|l| &l.virtual_hosts)
        .flat_map(|v| &v.rules)
        .flat_map(|r| &r.backends)
        .filter_map(|b| match &b.backend {
            Backend::Service(k) => Some(k.clone()),
            Backend::Invalid => None,
        })
        .collect();
    for key in keys {
        let eps = endpoints(index, &key);
        table.endpoints.insert(key, eps);
    }
    table
}

fn virtual_hosts(
    routes: &BTreeMap<Arc<str>, CompiledRoute<'_>>,
    attached: &[&Attached<'_>],
) -> Vec<VirtualHost> {
    // hostname -> (precedence key, rule) of the routes that name it.
    let mut own: BTreeMap<HostKey, Vec<(PrecedenceKey, Rule)>> = BTreeMap::new();
    // A route attached to two merged listeners contributes its rules once per hostname.
    let mut seen: BTreeSet<(String, Option<Hostname>)> = BTreeSet::new();
    for a in attached {
        let key = format!(
            "{}/{}",
            a.route.metadata.namespace.as_deref().unwrap_or_default(),
            a.route.metadata.name.as_deref().unwrap_or_default()
        );
        let Some(compiled) = routes.get(key.as_str()) else {
            continue;
        };
        for h in &a.hostnames {
            if !seen.insert((key.clone(), h.clone())) {
                continue;
            }
            let entries = own.entry(specificity(h.as_ref())).or_default();
            for (rule_index, parts, backends) in &compiled.rules {
                for (match_index, m) in parts.matches.iter().enumerate() {
                    entries.push((
                        precedence(compiled, *rule_index, match_index, m),
                        Rule {
                            route: compiled.key.clone(),
                            matches: m.clone(),
                            filters: parts.filters.clone(),
                            backends: backends.clone(),
                            timeouts: parts.timeouts,
                        },
                    ));
                }
            }
        }
    }
    for entries in own.values_mut() {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
    // A request whose host a specific virtual host names but whose path none of its rules
    // match falls through to the rules of the wildcard and catch-all hosts that also cover it.
    let hosts: Vec<&HostKey> = own.keys().collect();
    hosts
        .iter()
        .map(|key| {
            let hostname = key.2.clone();
            let rules = hosts
                .iter()
                .filter(|general| {
                    **general == *key || covers(general.2.as_ref(), hostname.as_ref())
                })
                .flat_map(|general| {
                    own.get(*general)
                        .into_iter()
                        .flatten()
                        .map(|(_, r)| r.clone())
                })
                .collect();
            VirtualHost { hostname, rules }
        })
        .collect()
}

/// The endpoints of a Service port, from the EndpointSlices labelled with the Service's name
/// (selector-less Services with hand-written slices and headless Services alike).
pub fn endpoints(index: &Index<'_>, key: &BackendKey) -> Vec<Endpoint> {
    let service = index.snapshot.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(&*key.namespace)
            && s.metadata.name.as_deref() == Some(&*key.name)
    });
    let Some(service_port) = service
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| i64::from(p.port) == i64::from(key.port))
        })
    else {
        return Vec::new();
    };
    let port_name = service_port.name.as_deref().unwrap_or_default();
    // An address can be in two slices while the EndpointSlice controller moves it; the
    // entry that says it can serve wins.
    let mut out: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    for slice in &index.snapshot.slices {
        if slice.metadata.namespace.as_deref() != Some(&*key.namespace)
            || slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                != Some(&*key.name)
            || slice.address_type == "FQDN"
        {
            continue;
        }
        let Some(target) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let conditions = ep.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            for addr in &ep.addresses {
                if let Ok(ip) = addr.parse::<IpAddr>() {
                    let addr = SocketAddr::new(ip, target);
                    let entry = out.entry(addr).or_insert(Endpoint {
                        addr,
                        ready,
                        terminating,
                    });
                    if ready && !terminating {
                        *entry = Endpoint {
                            addr,
                            ready,
                            terminating,
                        };
                    }
                }
            }
        }
    }
    out.into_values().collect()
}
