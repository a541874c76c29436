//! HTTPRoutes: attachment to our listeners (parentRef section name and port, allowed
//! namespaces and kinds, hostname intersection), backendRef resolution and their status.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::listeners::{Attached, From, GatewayState, HTTP_ROUTE, ListenerState};
use super::rules::{self, RuleParts};
use super::{Cond, Index, RouteStatus, Statuses, core_group, selector_matches};
use crate::gateway::controller::types::{GROUP, HttpBackendRef, HttpRoute};
use crate::gateway::table::{Backend, BackendKey, Hostname, WeightedBackend};

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
