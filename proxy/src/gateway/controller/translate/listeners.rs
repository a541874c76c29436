//! GatewayClasses, Gateways and listeners: which are ours, which listeners are valid (protocol,
//! TLS certificates from Secrets, allowed route kinds), which conflict, and their conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ClassStatus, Cond, GatewayStatus, Index, ListenerStatus, Statuses, core_group};
use crate::gateway::controller::services::{self, PlanError};
use crate::gateway::controller::types::{GROUP, Gateway, HttpRoute, Listener};
use crate::gateway::table::{Hostname, Protocol};

/// The one route kind this gateway serves.
pub const HTTP_ROUTE: &str = "HTTPRoute";

/// Which namespaces may attach routes to a listener.
#[derive(Debug, Clone)]
pub enum From {
    /// The Gateway's own.
    Same,
    /// Any.
    All,
    /// Those whose labels match.
    Selector(LabelSelector),
}

/// A route attached to a listener, with the hostnames it serves there (`None`: any host the
/// listener takes).
#[derive(Debug, Clone)]
pub struct Attached<'a> {
    /// The route.
    pub route: &'a HttpRoute,
    /// Intersection of the route's and the listener's hostnames.
    pub hostnames: Vec<Option<Hostname>>,
}

/// One listener after validation.
#[derive(Debug)]
pub struct ListenerState<'a> {
    /// The spec.
    pub spec: &'a Listener,
    /// Port (0 when out of range).
    pub port: u16,
    /// HTTP or HTTPS; `None` for anything else.
    pub protocol: Option<Protocol>,
    /// Parsed hostname.
    pub hostname: Option<Hostname>,
    /// Route kinds accepted (`HTTPRoute` or none).
    pub supported_kinds: Vec<&'static str>,
    /// Which namespaces may attach.
    pub from: From,
    /// `Accepted` False: reason and message.
    pub not_accepted: Option<(&'static str, String)>,
    /// `ResolvedRefs` False: reason and message.
    pub unresolved: Option<(&'static str, String)>,
    /// `Conflicted` True: reason and message.
    pub conflicted: Option<(&'static str, String)>,
    /// HTTPS certificates.
    pub certificates: Vec<Arc<CertifiedKey>>,
    /// Routes attached (filled by the route pass).
    pub attached: Vec<Attached<'a>>,
    /// The pod port serving it: the `targetPort` of its port in the Gateway's Service.
    pub internal_port: Option<u16>,
}

impl ListenerState<'_> {
    /// Whether the data plane serves this listener.
    pub fn programmed(&self) -> bool {
        self.protocol.is_some()
            && self.not_accepted.is_none()
            && self.conflicted.is_none()
            && !self.supported_kinds.is_empty()
            && !matches!(self.unresolved, Some((reason, _)) if reason != "InvalidRouteKinds")
    }

    /// Whether it is valid and its internal port is known: the data plane binds it.
    pub fn served(&self) -> bool {
        self.programmed() && self.internal_port.is_some()
    }

    fn status(&self) -> ListenerStatus {
        let mut conditions = Vec::with_capacity(4);
        let conflict = self.conflicted.as_ref();
        match (&self.not_accepted, conflict) {
            (Some((reason, msg)), _) | (None, Some((reason, msg))) => {
                conditions.push(Cond::new("Accepted", false, reason, msg.clone()));
            }
            (None, None) => {
                conditions.push(Cond::new("Accepted", true, "Accepted", "listener accepted"));
            }
        }
        if self.served() {
            conditions.push(Cond::new(
                "Programmed",
                true,
                "Programmed",
                "listener programmed",
            ));
        } else if self.programmed() {
            conditions.push(Cond::new(
                "Programmed",
                false,
                "Pending",
                "waiting for the Gateway's Service to hold this port",
            ));
        } else {
            let reason = conflict.map_or("Invalid", |(r, _)| *r);
            conditions.push(Cond::new(
                "Programmed",
                false,
                reason,
                "listener not programmed",
            ));
        }
        match &self.unresolved {
            Some((reason, msg)) => {
                conditions.push(Cond::new("ResolvedRefs", false, reason, msg.clone()));
            }
            None => conditions.push(Cond::new(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "references resolved",
            )),
        }
        match conflict {
            Some((reason, msg)) => {
                conditions.push(Cond::new("Conflicted", true, reason, msg.clone()));
            }
            None => conditions.push(Cond::new(
                "Conflicted",
                false,
                "NoConflicts",
                "no conflicts",
            )),
        }
        ListenerStatus {
            name: self.spec.name.clone(),
            supported_kinds: self.supported_kinds.clone(),
            attached_routes: i64::try_from(self.attached.len()).unwrap_or(i64::MAX),
            conditions,
        }
    }
}

/// One Gateway of ours after validation.
#[derive(Debug)]
pub struct GatewayState<'a> {
    /// The object.
    pub gateway: &'a Gateway,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Listeners in spec order.
    pub listeners: Vec<ListenerState<'a>>,
    /// Addresses for the status (its Service's).
    pub addresses: Vec<(String, String)>,
    /// Whether its Service exists.
    pub service: bool,
    /// Why it has no (new) Service.
    pub plan_error: Option<PlanError>,
}

impl GatewayState<'_> {
    /// The status the Gateway should have.
    pub fn status(&self) -> GatewayStatus {
        let valid = self
            .listeners
            .iter()
            .filter(|l| l.not_accepted.is_none() && l.conflicted.is_none())
            .count();
        let accepted = if let Some(PlanError::UnsupportedAddress(msg)) = &self.plan_error {
            Cond::new("Accepted", false, "UnsupportedAddress", msg.clone())
        } else if valid == self.listeners.len() && valid > 0 {
            Cond::new("Accepted", true, "Accepted", "gateway accepted")
        } else if valid > 0 {
            Cond::new(
                "Accepted",
                true,
                "ListenersNotValid",
                "some listeners are not valid",
            )
        } else {
            Cond::new(
                "Accepted",
                false,
                "ListenersNotValid",
                "no listener is valid",
            )
        };
        let programmed = match &self.plan_error {
            Some(PlanError::UnsupportedAddress(msg)) => {
                Cond::new("Programmed", false, "AddressNotUsable", msg.clone())
            }
            Some(PlanError::Exhausted(msg)) => {
                Cond::new("Programmed", false, "NoResources", msg.clone())
            }
            None if !self.listeners.iter().any(ListenerState::programmed) => {
                Cond::new("Programmed", false, "Invalid", "no listener is programmed")
            }
            None if !self.service || !self.listeners.iter().any(ListenerState::served) => {
                Cond::new(
                    "Programmed",
                    false,
                    "Pending",
                    "waiting for the Gateway's Service",
                )
            }
            None => Cond::new("Programmed", true, "Programmed", "gateway programmed"),
        };
        GatewayStatus {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            generation: self.gateway.metadata.generation,
            conditions: vec![accepted, programmed],
            addresses: self.addresses.clone(),
            listeners: self.listeners.iter().map(ListenerState::status).collect(),
        }
    }
}

/// Validate our GatewayClasses and their Gateways; class statuses go into `statuses`, Gateway
/// statuses are produced later (they need the attached route counts).
pub fn gateways<'a>(index: &Index<'a>, statuses: &mut Statuses) -> Vec<GatewayState<'a>> {
    let snapshot = index.snapshot;
    let mut ours = Vec::new();
    for class in &snapshot.gateway_classes {
        if class.spec.controller_name != snapshot.controller_name {
            continue;
        }
        let Some(name) = class.metadata.name.clone() else {
            continue;
        };
        statuses.classes.push(ClassStatus {
            name: name.clone(),
            generation: class.metadata.generation,
            conditions: vec![
                Cond::new("Accepted", true, "Accepted", "class accepted by outrigger"),
                Cond::new(
                    "SupportedVersion",
                    true,
                    "SupportedVersion",
                    "Gateway API v1.6 supported",
                ),
            ],
        });
        ours.push(name);
    }
    let mut gateways: Vec<&'a Gateway> = snapshot
        .gateways
        .iter()
        .map(|g| &**g)
        .filter(|g| ours.contains(&g.spec.gateway_class_name))
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .collect();
    // Oldest first: when two Services claim one internal port, the older Gateway keeps it.
    gateways.sort_by(|a, b| {
        let key = |g: &Gateway| {
            (
                g.metadata.creation_timestamp.clone().map(|t| t.0),
                g.metadata.namespace.clone(),
                g.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let settings = &snapshot.service_settings;
    let managed = services::managed(&snapshot.services, &settings.namespace);
    let plan = services::plan(&gateways, &managed, settings);
    for gw in &gateways {
        let key = gateway_key(gw);
        match plan.get(&key) {
            // A Service needs a port: a Gateway without HTTP(S) listeners gets none.
            Some(Ok(ports)) if !ports.is_empty() => statuses
                .services
                .push(services::desired(gw, ports, settings)),
            Some(Err(PlanError::Exhausted(_))) => {
                statuses
                    .keep_services
                    .push(services::service_name(&key.0, &key.1));
            }
            _ => {}
        }
    }
    // Listeners conflict only within one Gateway: each Gateway has its own Service and
    // internal ports.
    gateways
        .into_iter()
        .filter_map(|g| {
            let key = gateway_key(g);
            gateway(index, g, managed.get(&key), plan.get(&key))
        })
        .collect()
}

fn gateway_key(g: &Gateway) -> services::GatewayKey {
    (
        g.metadata.namespace.clone().unwrap_or_default(),
        g.metadata.name.clone().unwrap_or_default(),
    )
}

fn gateway<'a>(
    index: &Index<'a>,
    gateway: &'a Gateway,
    managed: Option<&services::Managed>,
    plan: Option<&Result<BTreeMap<u16, u16>, PlanError>>,
) -> Option<GatewayState<'a>> {
    let namespace = gateway.metadata.namespace.clone()?;
    let name = gateway.metadata.name.clone()?;
    let mut listeners: Vec<ListenerState<'a>> = gateway
        .spec
        .listeners
        .iter()
        .map(|l| listener(index, &namespace, l))
        .collect();
    // Conflicts: the first listener on a port sets its protocol; a later one with another
    // protocol, or the same protocol and hostname, conflicts.
    for i in 0..listeners.len() {
        let (earlier, rest) = listeners.split_at_mut(i);
        let Some(current) = rest.first_mut() else {
            continue;
        };
        if current.protocol.is_none() || current.not_accepted.is_some() {
            continue;
        }
        let on_port = earlier.iter().filter(|l| {
            l.port == current.port
                && l.protocol.is_some()
                && l.not_accepted.is_none()
                && l.conflicted.is_none()
        });
        for other in on_port {
            if other.protocol != current.protocol {
                current.conflicted = Some((
                    "ProtocolConflict",
                    format!("port {} is already {:?}", current.port, other.protocol),
                ));
                break;
            }
            if other.hostname == current.hostname {
                current.conflicted = Some((
                    "HostnameConflict",
                    format!(
                        "listener {} has the same port and hostname",
                        other.spec.name
                    ),
                ));
                break;
            }
        }
    }
    // Served only on the internal ports its Service holds (the leader writes them).
    if let Some(m) = managed {
        for l in &mut listeners {
            l.internal_port = m.ports.get(&l.port).copied();
        }
    }
    Some(GatewayState {
        gateway,
        namespace,
        name,
        listeners,
        addresses: managed.map(|m| m.addresses.clone()).unwrap_or_default(),
        service: managed.is_some(),
        plan_error: plan.and_then(|p| p.clone().err()),
    })
}

/// Parse a Gateway API hostname (`*.` wildcard or exact); `None` for empty.
pub fn parse_hostname(host: &str) -> Option<Hostname> {
    let host = host.trim().to_ascii_lowercase();
    if host.is_empty() {
        None
    } else if let Some(suffix) = host.strip_prefix('*') {
        Some(Hostname::Wildcard(suffix.into()))
    } else {
        Some(Hostname::Exact(host.into()))
    }
}

fn listener<'a>(index: &Index<'a>, namespace: &str, spec: &'a Listener) -> ListenerState<'a> {
    let protocol = match spec.protocol.as_str() {
        "HTTP" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        _ => None,
    };
    let mut state = ListenerState {
        spec,
        port: u16::try_from(spec.port).unwrap_or(0),
        protocol,
        hostname: spec.hostname.as_deref().and_then(parse_hostname),
        supported_kinds: Vec::new(),
        from: From::Same,
        not_accepted: None,
        unresolved: None,
        conflicted: None,
        certificates: Vec::new(),
        attached: Vec::new(),
        internal_port: None,
    };
    if protocol.is_none() {
        state.not_accepted = Some((
            "UnsupportedProtocol",
            format!("protocol {:?} is not supported", spec.protocol),
        ));
        return state;
    }
    if state.port == 0 {
        state.not_accepted = Some((
            "UnsupportedValue",
            format!("port {} is out of range", spec.port),
        ));
    }
    let allowed = spec.allowed_routes.clone().unwrap_or_default();
    state.from = match allowed.namespaces.as_ref().and_then(|n| n.from.as_deref()) {
        Some("All") => From::All,
        Some("Selector") => From::Selector(
            allowed
                .namespaces
                .and_then(|n| n.selector)
                .unwrap_or_default(),
        ),
        _ => From::Same,
    };
    match allowed.kinds.as_deref() {
        None | Some([]) => state.supported_kinds.push(HTTP_ROUTE),
        Some(kinds) => {
            let mut invalid = Vec::new();
            for k in kinds {
                if k.group.as_deref().unwrap_or(GROUP) == GROUP && k.kind == HTTP_ROUTE {
                    if !state.supported_kinds.contains(&HTTP_ROUTE) {
                        state.supported_kinds.push(HTTP_ROUTE);
                    }
                } else {
                    invalid.push(format!(
                        "{}/{}",
                        k.group.as_deref().unwrap_or(GROUP),
                        k.kind
                    ));
                }
            }
            if !invalid.is_empty() {
                state.unresolved = Some((
                    "InvalidRouteKinds",
                    format!("unsupported route kinds: {}", invalid.join(", ")),
                ));
            }
        }
    }
    if protocol == Some(Protocol::Https) {
        certificates(index, namespace, &mut state);
    }
    state
}

fn certificates(index: &Index<'_>, namespace: &str, state: &mut ListenerState<'_>) {
    let tls = state.spec.tls.clone().unwrap_or_default();
    if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
        state.not_accepted = Some((
            "UnsupportedValue",
            "HTTPS listeners support TLS mode Terminate only".into(),
        ));
        return;
    }
    if tls.certificate_refs.is_empty() {
        state.unresolved = Some((
            "InvalidCertificateRef",
            "an HTTPS listener needs a certificateRef".into(),
        ));
        return;
    }
    for cert_ref in &tls.certificate_refs {
        let group = core_group(cert_ref.group.as_deref().unwrap_or(""));
        let kind = cert_ref.kind.as_deref().unwrap_or("Secret");
        if !group.is_empty() || kind != "Secret" {
            state.unresolved = Some((
                "InvalidCertificateRef",
                format!("{group}/{kind} is not a Secret"),
            ));
            return;
        }
        let ns = cert_ref.namespace.as_deref().unwrap_or(namespace);
        if ns != namespace && !index.granted("Gateway", namespace, "", "Secret", ns, &cert_ref.name)
        {
            state.unresolved = Some((
                "RefNotPermitted",
                format!("no ReferenceGrant allows Secret {ns}/{}", cert_ref.name),
            ));
            return;
        }
        let secret = index.snapshot.secrets.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.metadata.name.as_deref() == Some(cert_ref.name.as_str())
        });
        let Some(secret) = secret else {
            state.unresolved = Some((
                "InvalidCertificateRef",
                format!("Secret {ns}/{} not found", cert_ref.name),
            ));
            return;
        };
        match certified_key(secret) {
            Ok(key) => state.certificates.push(Arc::new(key)),
            Err(e) => {
                state.unresolved = Some((
                    "InvalidCertificateRef",
                    format!("Secret {ns}/{}: {e}", cert_ref.name),
                ));
                return;
            }
        }
    }
}

/// The signing key and chain of a `kubernetes.io/tls` Secret.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, String> {
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err("not of type kubernetes.io/tls".into());
    }
    let data = secret.data.as_ref().ok_or("no data")?;
    let crt = data.get("tls.crt").ok_or("no tls.crt")?;
    let key = data.get("tls.key").ok_or("no tls.key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt.0)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key.0).map_err(|e| format!("tls.key: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("key does not match certificate: {e}"))
}
