//! The table itself: ports (one per Gateway and listener port), listeners, virtual hosts with their
//! rules in precedence order, and the endpoints of every Service backend.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::Index;
use super::listeners::{Attached, GatewayState};
use super::routes::CompiledRoute;
use crate::gateway::table::{
    Backend, BackendKey, Endpoint, Hostname, Listener, PathMatch, Port, Protocol, Rule, Table,
    VirtualHost,
};

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

/// One table listener in the making: protocol, listener port, listener, attached routes.
type Merged<'r, 'a> = (Protocol, u16, Listener, Vec<&'r Attached<'a>>);

/// Build the table from the programmed listeners and their attached routes.
pub fn table(
    index: &Index<'_>,
    gateways: &[GatewayState<'_>],
    routes: &BTreeMap<Arc<str>, CompiledRoute<'_>>,
) -> Table {
    // Each served listener is bound on its own Gateway's internal port, so listeners of
    // different Gateways never share a port; those of one Gateway on one listener port share
    // its internal port, most specific hostname first.
    let mut merged: BTreeMap<(u16, HostKey), Merged<'_, '_>> = BTreeMap::new();
    let mut protocols: BTreeMap<u16, Protocol> = BTreeMap::new();
    for gw in gateways {
        for l in gw.listeners.iter().filter(|l| l.served()) {
            let (Some(protocol), Some(internal)) = (l.protocol, l.internal_port) else {
                continue;
            };
            // The listener pass marks a listener Conflicted when an earlier one of its Gateway
            // has its port with the other protocol; a Service edited by hand could still map
            // two Gateways to one internal port: the older Gateway keeps it.
            if *protocols.entry(internal).or_insert(protocol) != protocol {
                continue;
            }
            let entry = merged.entry((internal, specificity(l.hostname.as_ref())));
            if let std::collections::btree_map::Entry::Vacant(v) = entry {
                let name = format!("{}/{}/{}", gw.namespace, gw.name, l.spec.name);
                let listener = Listener {
                    name: name.into(),
                    hostname: l.hostname.clone(),
                    certificates: l.certificates.clone(),
                    virtual_hosts: Vec::new(),
                };
                v.insert((protocol, l.port, listener, l.attached.iter().collect()));
            }
        }
    }
    let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
    // Keys sort by port, then most specific hostname first: the order the data plane wants.
    for ((port, _), (protocol, listener_port, mut listener, attached)) in merged {
        listener.virtual_hosts = virtual_hosts(routes, &attached);
        ports
            .entry(port)
            .or_insert_with(|| Port {
                port,
                listener_port,
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
