//! Serde types for the Gateway API kinds the controller reads (v1 GatewayClass, Gateway,
//! HTTPRoute; v1beta1 ReferenceGrant), only the fields it uses.
//!
//! Written here rather than taken from the `gateway-api` crate, which pins another kube and
//! k8s-openapi. Every field is optional or defaulted so that a malformed object (the CRDs
//! validate, but an older CRD or a hand-written object may not) deserializes and is judged by
//! the translation instead of failing the whole watch. `status` stays raw JSON: the status
//! writer compares and merges it as JSON, and leaves what other controllers wrote alone.

use std::borrow::Cow;

use k8s_openapi::ClusterResourceScope;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

macro_rules! resource {
    ($ty:ident, $scope:ty, $version:literal, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(GROUP)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// `GatewayClass` (cluster-scoped).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClass {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: GatewayClassSpec,
    /// Raw status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}
resource!(
    GatewayClass,
    ClusterResourceScope,
    "v1",
    "GatewayClass",
    "gatewayclasses"
);

/// `GatewayClass.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// Which controller owns the class.
    pub controller_name: String,
}

/// `Gateway`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Gateway {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: GatewaySpec,
    /// Raw status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}
resource!(Gateway, NamespaceResourceScope, "v1", "Gateway", "gateways");

/// `Gateway.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The class.
    pub gateway_class_name: String,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Requested addresses (`IPAddress` ones become the managed Service's IP).
    pub addresses: Vec<GatewayAddress>,
    /// Labels and annotations for the managed Service.
    pub infrastructure: Option<Infrastructure>,
}

/// A `Gateway.spec.addresses` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayAddress {
    /// `IPAddress` (the default), `Hostname` or a domain-prefixed custom type.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// `Gateway.spec.infrastructure`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Infrastructure {
    /// Labels for the resources the implementation creates.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations for them.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A Gateway listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    /// Unique within the Gateway.
    pub name: String,
    /// Hostname (may be a `*.` wildcard).
    pub hostname: Option<String>,
    /// Port.
    pub port: i64,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed custom one.
    pub protocol: String,
    /// TLS settings.
    pub tls: Option<ListenerTls>,
    /// Which routes may attach.
    pub allowed_routes: Option<AllowedRoutes>,
}

/// `listeners[].tls`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate` (default) or `Passthrough`.
    pub mode: Option<String>,
    /// Certificates.
    pub certificate_refs: Vec<ObjectRef>,
}

/// `SecretObjectReference` and the like: group, kind, name, namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group (`""` is core).
    pub group: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (defaults to the referrer's).
    pub namespace: Option<String>,
}

/// `listeners[].allowedRoutes`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// Namespaces.
    pub namespaces: Option<RouteNamespaces>,
    /// Kinds (empty: those of the protocol).
    pub kinds: Option<Vec<RouteGroupKind>>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (default), `All` or `Selector`.
    pub from: Option<String>,
    /// With `Selector`.
    pub selector: Option<LabelSelector>,
}

/// A route group and kind.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// Group (defaults to the Gateway API's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
}

/// `HTTPRoute`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: HttpRouteSpec,
    /// Raw status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}
resource!(
    HttpRoute,
    NamespaceResourceScope,
    "v1",
    "HTTPRoute",
    "httproutes"
);

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Parents.
    pub parent_refs: Vec<ParentRef>,
    /// Hostnames.
    pub hostnames: Vec<String>,
    /// Rules (the CRD defaults one rule matching `/`).
    pub rules: Vec<HttpRouteRule>,
}

/// `parentRefs[]`; written back as is in `status.parents[].parentRef`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentRef {
    /// Group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// `rules[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Matches (empty: prefix `/`).
    pub matches: Vec<HttpRouteMatch>,
    /// Filters.
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts.
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// `matches[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path (defaults to prefix `/`).
    pub path: Option<PathMatchSpec>,
    /// Headers.
    pub headers: Vec<ValueMatchSpec>,
    /// Query parameters.
    pub query_params: Vec<ValueMatchSpec>,
    /// Method.
    pub method: Option<String>,
}

/// `matches[].path`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PathMatchSpec {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Value (default `/`).
    pub value: Option<String>,
}

/// A header or query parameter match.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ValueMatchSpec {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `filters[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// Filter type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `RequestHeaderModifier`.
    pub request_header_modifier: Option<HeaderFilterSpec>,
    /// `ResponseHeaderModifier`.
    pub response_header_modifier: Option<HeaderFilterSpec>,
    /// `RequestRedirect`.
    pub request_redirect: Option<RedirectSpec>,
    /// `URLRewrite`.
    pub url_rewrite: Option<RewriteSpec>,
}

/// `HTTPHeaderFilter`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderFilterSpec {
    /// Set.
    pub set: Vec<HeaderSpec>,
    /// Add.
    pub add: Vec<HeaderSpec>,
    /// Remove.
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderSpec {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `HTTPRequestRedirectFilter`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RedirectSpec {
    /// Scheme.
    pub scheme: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Path.
    pub path: Option<PathModifierSpec>,
    /// Port.
    pub port: Option<i64>,
    /// Status code (default 302).
    pub status_code: Option<i64>,
}

/// `HTTPURLRewriteFilter`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RewriteSpec {
    /// Hostname.
    pub hostname: Option<String>,
    /// Path.
    pub path: Option<PathModifierSpec>,
}

/// `HTTPPathModifier`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PathModifierSpec {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    /// With `ReplaceFullPath`.
    pub replace_full_path: Option<String>,
    /// With `ReplacePrefixMatch`.
    pub replace_prefix_match: Option<String>,
}

/// `backendRefs[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// Group (`""`: core).
    pub group: Option<String>,
    /// Kind (default `Service`).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default the route's).
    pub namespace: Option<String>,
    /// Port (required for Services).
    pub port: Option<i64>,
    /// Weight (default 1).
    pub weight: Option<i64>,
    /// Per-backend filters.
    pub filters: Vec<HttpRouteFilter>,
}

/// `rules[].timeouts` (Gateway API durations, e.g. `1s`, `500ms`, `1h30m`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// `request`.
    pub request: Option<String>,
    /// `backendRequest`.
    pub backend_request: Option<String>,
}

/// `ReferenceGrant` (v1beta1).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReferenceGrant {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ReferenceGrantSpec,
}
resource!(
    ReferenceGrant,
    NamespaceResourceScope,
    "v1beta1",
    "ReferenceGrant",
    "referencegrants"
);

/// `ReferenceGrant.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    pub from: Vec<GrantFrom>,
    /// To what (in the grant's namespace).
    pub to: Vec<GrantTo>,
}

/// `from[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrantFrom {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
}

/// `to[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrantTo {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name (none: every object of the kind).
    pub name: Option<String>,
}
