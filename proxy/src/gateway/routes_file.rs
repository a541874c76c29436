//! `--routes-file`: a static routing [`Table`] in JSON, for tests, the benchmark and setups
//! without the Gateway API. The format mirrors the table (docs/gateway.md has an example); rules
//! are sorted by the Gateway API's match precedence (exact path, longest prefix, method, most
//! headers, most query parameters, then file order), as the controller sorts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::gateway::table::{
    Backend, BackendKey, Endpoint, Filter, HeaderMatch, HeaderModifier, Hostname, Listener,
    PathMatch, PathModifier, Port, Protocol, QueryMatch, Redirect, Rewrite, RouteMatch, Rule,
    Table, Timeouts, ValueMatch, VirtualHost, WeightedBackend,
};

/// Why a routes file did not load.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// Unreadable file.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// Not the documented JSON.
    #[error("not a valid routes file: {0}")]
    Json(#[from] serde_json::Error),
    /// A value the JSON schema cannot check.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> RoutesError {
    RoutesError::Invalid(msg.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ports: Vec<FilePort>,
    #[serde(default)]
    backends: Vec<FileBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePort {
    port: u16,
    #[serde(default = "http")]
    protocol: String,
    listeners: Vec<FileListener>,
}

fn http() -> String {
    "HTTP".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileListener {
    name: String,
    hostname: Option<String>,
    #[serde(default)]
    certificates: Vec<FileCert>,
    virtual_hosts: Vec<FileVhost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCert {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVhost {
    hostname: Option<String>,
    rules: Vec<FileRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileRule {
    route: String,
    #[serde(default)]
    path: Option<FileValue>,
    method: Option<String>,
    #[serde(default)]
    headers: Vec<FileNamed>,
    #[serde(default)]
    query_params: Vec<FileNamed>,
    #[serde(default)]
    filters: Vec<FileFilter>,
    #[serde(default)]
    backends: Vec<FileWeighted>,
    #[serde(default)]
    timeouts: FileTimeouts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileValue {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNamed {
    name: String,
    value: String,
    #[serde(rename = "type", default = "exact")]
    kind: String,
}

fn exact() -> String {
    "Exact".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHeader {
    name: String,
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileModifier {
    #[serde(default)]
    set: Vec<FileHeader>,
    #[serde(default)]
    add: Vec<FileHeader>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields, rename_all_fields = "camelCase")]
enum FileFilter {
    RequestHeaderModifier(FileModifier),
    ResponseHeaderModifier(FileModifier),
    RequestRedirect {
        scheme: Option<String>,
        hostname: Option<String>,
        port: Option<u16>,
        path: Option<FileValue>,
        status_code: Option<u16>,
    },
    #[serde(rename = "URLRewrite")]
    UrlRewrite {
        hostname: Option<String>,
        path: Option<FileValue>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeighted {
    #[serde(default = "one")]
    weight: u32,
    /// `namespace/name:port`, or absent for an invalid backend (answers 500).
    service: Option<String>,
    #[serde(default)]
    filters: Vec<FileFilter>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileTimeouts {
    request: Option<String>,
    backend_request: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    /// `namespace/name:port`.
    service: String,
    endpoints: Vec<FileEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoint {
    address: SocketAddr,
    #[serde(default = "yes")]
    ready: bool,
    #[serde(default)]
    terminating: bool,
}

fn yes() -> bool {
    true
}

/// Read and convert `path`.
pub fn load(path: &Path) -> Result<Table, RoutesError> {
    parse(&std::fs::read_to_string(path)?)
}

/// Convert the JSON text of a routes file.
pub fn parse(text: &str) -> Result<Table, RoutesError> {
    let file: File = serde_json::from_str(text)?;
    let mut ports = Vec::new();
    for p in file.ports {
        let protocol = match p.protocol.as_str() {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            other => {
                return Err(invalid(format!(
                    "port {}: unknown protocol {other:?}",
                    p.port
                )));
            }
        };
        let mut listeners = Vec::new();
        for l in p.listeners {
            let mut certificates = Vec::new();
            for c in &l.certificates {
                let key = outrigger_tls::load_certified_key(&c.cert, &c.key)
                    .map_err(|e| invalid(format!("listener {}: {e}", l.name)))?;
                certificates.push(Arc::new(key));
            }
            if protocol == Protocol::Https && certificates.is_empty() {
                return Err(invalid(format!(
                    "listener {}: HTTPS needs a certificate",
                    l.name
                )));
            }
            let mut virtual_hosts = Vec::new();
            for v in l.virtual_hosts {
                let mut rules = v
                    .rules
                    .into_iter()
                    .map(rule)
                    .collect::<Result<Vec<_>, _>>()?;
                rules.sort_by_key(precedence);
                virtual_hosts.push(VirtualHost {
                    hostname: v.hostname.as_deref().map(hostname),
                    rules,
                });
            }
            listeners.push(Listener {
                name: l.name.into(),
                hostname: l.hostname.as_deref().map(hostname),
                certificates,
                virtual_hosts,
            });
        }
        ports.push(Port {
            port: p.port,
            listener_port: p.port,
            protocol,
            listeners,
        });
    }
    ports.sort_by_key(|p| p.port);
    let mut endpoints = std::collections::BTreeMap::new();
    for b in file.backends {
        let list = b
            .endpoints
            .iter()
            .map(|e| Endpoint {
                addr: e.address,
                ready: e.ready,
                terminating: e.terminating,
            })
            .collect();
        endpoints.insert(service(&b.service)?, list);
    }
    Ok(Table { ports, endpoints })
}

/// Sort key of the spec's precedence (smaller wins); the sort is stable, so file order breaks
/// ties as creation order does for routes.
fn precedence(
    r: &Rule,
) -> (
    u8,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    let (kind, len) = match &r.matches.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::Prefix(p) => (1, p.len()),
        PathMatch::RegularExpression(_) => (2, 0),
    };
    (
        kind,
        std::cmp::Reverse(len),
        r.matches.method.is_none(),
        std::cmp::Reverse(r.matches.headers.len()),
        std::cmp::Reverse(r.matches.query.len()),
    )
}

/// `*.example.com` or `foo.example.com`, lower-cased.
pub fn hostname(h: &str) -> Hostname {
    let h = h.to_ascii_lowercase();
    match h.strip_prefix('*') {
        Some(suffix) => Hostname::Wildcard(suffix.into()),
        None => Hostname::Exact(h.into()),
    }
}

fn service(s: &str) -> Result<BackendKey, RoutesError> {
    let bad = || invalid(format!("{s:?} is not namespace/name:port"));
    let (ns, rest) = s.split_once('/').ok_or_else(bad)?;
    let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    Ok(BackendKey {
        namespace: ns.into(),
        name: name.into(),
        port: port.parse().map_err(|_| bad())?,
    })
}

fn regex(s: &str) -> Result<Arc<regex::Regex>, RoutesError> {
    regex::Regex::new(&format!("^(?:{s})$"))
        .map(Arc::new)
        .map_err(|e| invalid(format!("bad expression {s:?}: {e}")))
}

fn value(kind: &str, v: &str) -> Result<ValueMatch, RoutesError> {
    match kind {
        "Exact" => Ok(ValueMatch::Exact(v.into())),
        "RegularExpression" => Ok(ValueMatch::RegularExpression(regex(v)?)),
        other => Err(invalid(format!("unknown match type {other:?}"))),
    }
}

fn rule(r: FileRule) -> Result<Rule, RoutesError> {
    let path = match &r.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => match p.kind.as_str() {
            "Exact" => PathMatch::Exact(p.value.as_str().into()),
            "PathPrefix" => PathMatch::Prefix(p.value.as_str().into()),
            "RegularExpression" => PathMatch::RegularExpression(regex(&p.value)?),
            other => {
                return Err(invalid(format!(
                    "route {}: unknown path type {other:?}",
                    r.route
                )));
            }
        },
    };
    let headers = r
        .headers
        .iter()
        .map(|h| {
            Ok(HeaderMatch {
                name: http::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| invalid(format!("bad header name {:?}", h.name)))?,
                value: value(&h.kind, &h.value)?,
            })
        })
        .collect::<Result<_, RoutesError>>()?;
    let query = r
        .query_params
        .iter()
        .map(|q| {
            Ok(QueryMatch {
                name: q.name.as_str().into(),
                value: value(&q.kind, &q.value)?,
            })
        })
        .collect::<Result<_, RoutesError>>()?;
    let method = match &r.method {
        Some(m) => Some(
            http::Method::from_bytes(m.as_bytes())
                .map_err(|_| invalid(format!("bad method {m:?}")))?,
        ),
        None => None,
    };
    let duration = |d: &Option<String>| -> Result<Option<std::time::Duration>, RoutesError> {
        d.as_deref()
            .map(|s| outrigger_daemon::cli::duration(s).map_err(|e| invalid(e.to_string())))
            .transpose()
    };
    let backends = r
        .backends
        .into_iter()
        .map(|b| {
            Ok(WeightedBackend {
                weight: b.weight,
                backend: match &b.service {
                    Some(s) => Backend::Service(service(s)?),
                    None => Backend::Invalid,
                },
                filters: filters(b.filters)?,
            })
        })
        .collect::<Result<_, RoutesError>>()?;
    Ok(Rule {
        route: r.route.into(),
        matches: RouteMatch {
            path,
            headers,
            query,
            method,
        },
        filters: filters(r.filters)?,
        backends,
        timeouts: Timeouts {
            request: duration(&r.timeouts.request)?,
            backend_request: duration(&r.timeouts.backend_request)?,
        },
    })
}

fn modifier(m: FileModifier) -> Result<HeaderModifier, RoutesError> {
    let pair = |h: FileHeader| {
        Ok((
            http::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| invalid(format!("bad header name {:?}", h.name)))?,
            http::HeaderValue::from_str(&h.value)
                .map_err(|_| invalid(format!("bad header value {:?}", h.value)))?,
        ))
    };
    Ok(HeaderModifier {
        set: m
            .set
            .into_iter()
            .map(pair)
            .collect::<Result<_, RoutesError>>()?,
        add: m
            .add
            .into_iter()
            .map(pair)
            .collect::<Result<_, RoutesError>>()?,
        remove: m
            .remove
            .iter()
            .map(|n| {
                http::HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| invalid(format!("bad header name {n:?}")))
            })
            .collect::<Result<_, RoutesError>>()?,
    })
}

fn path_modifier(p: Option<FileValue>) -> Result<Option<PathModifier>, RoutesError> {
    p.map(|p| match p.kind.as_str() {
        "ReplaceFullPath" => Ok(PathModifier::Full(p.value.into())),
        "ReplacePrefixMatch" => Ok(PathModifier::Prefix(p.value.into())),
        other => Err(invalid(format!("unknown path modifier {other:?}"))),
    })
    .transpose()
}

fn filters(list: Vec<FileFilter>) -> Result<Vec<Filter>, RoutesError> {
    list.into_iter()
        .map(|f| {
            Ok(match f {
                FileFilter::RequestHeaderModifier(m) => Filter::RequestHeaders(modifier(m)?),
                FileFilter::ResponseHeaderModifier(m) => Filter::ResponseHeaders(modifier(m)?),
                FileFilter::RequestRedirect {
                    scheme,
                    hostname,
                    port,
                    path,
                    status_code,
                } => Filter::Redirect(Redirect {
                    scheme: scheme.map(Into::into),
                    hostname: hostname.map(Into::into),
                    path: path_modifier(path)?,
                    port,
                    status: match status_code.unwrap_or(302) {
                        301 => http::StatusCode::MOVED_PERMANENTLY,
                        302 => http::StatusCode::FOUND,
                        other => {
                            return Err(invalid(format!(
                                "redirect status {other} is not 301 or 302"
                            )));
                        }
                    },
                }),
                FileFilter::UrlRewrite { hostname, path } => Filter::Rewrite(Rewrite {
                    hostname: hostname.map(Into::into),
                    path: path_modifier(path)?,
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_sorted_by_precedence_and_errors_name_the_problem() {
        let t = parse(
            r#"{"ports":[{"port":80,"listeners":[{"name":"l","virtualHosts":[{"rules":[
                {"route":"a","path":{"type":"PathPrefix","value":"/"}},
                {"route":"b","path":{"type":"PathPrefix","value":"/long"}},
                {"route":"c","path":{"type":"Exact","value":"/x"}},
                {"route":"d","path":{"type":"PathPrefix","value":"/long"},"method":"GET"}
            ]}]}]}],"backends":[{"service":"ns/s:80","endpoints":[{"address":"127.0.0.1:1"}]}]}"#,
        )
        .unwrap();
        let order: Vec<&str> = t.ports[0].listeners[0].virtual_hosts[0]
            .rules
            .iter()
            .map(|r| &*r.route)
            .collect();
        assert_eq!(order, ["c", "d", "b", "a"]);
        assert_eq!(t.endpoints.len(), 1);
        let e = parse(r#"{"ports":[{"port":80,"protocol":"UDP","listeners":[]}]}"#).unwrap_err();
        assert!(e.to_string().contains("UDP"), "{e}");
        assert!(parse("{").is_err());
        assert!(parse(r#"{"ports":[],"extra":1}"#).is_err());
    }
}
