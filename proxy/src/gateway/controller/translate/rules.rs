//! One HTTPRoute rule's matches, filters and timeouts in table form. Anything the gateway
//! cannot honour (a bad regex, an unsupported filter, a malformed header) is an error: the
//! caller drops the rule and says why in the route's status, because serving it without the
//! part it ignored would route traffic the author did not ask for.

use std::sync::Arc;
use std::time::Duration;

use crate::gateway::controller::types::{
    HeaderFilterSpec, HttpRouteFilter, HttpRouteMatch, HttpRouteRule, PathModifierSpec,
    ValueMatchSpec,
};
use crate::gateway::table::{
    Filter, HeaderMatch, HeaderModifier, PathMatch, PathModifier, QueryMatch, Redirect, Rewrite,
    RouteMatch, Timeouts, ValueMatch,
};

/// The backend-independent parts of a rule.
#[derive(Debug, Clone)]
pub struct RuleParts {
    /// One per match (the default prefix `/` when the rule lists none).
    pub matches: Vec<RouteMatch>,
    /// The rule's filters.
    pub filters: Vec<Filter>,
    /// Timeouts.
    pub timeouts: Timeouts,
}

/// Convert a rule, or say why it cannot be served.
pub fn rule_parts(rule: &HttpRouteRule) -> Result<RuleParts, String> {
    let matches = if rule.matches.is_empty() {
        vec![default_match()]
    } else {
        rule.matches
            .iter()
            .map(route_match)
            .collect::<Result<_, _>>()?
    };
    let filters = filters(&rule.filters)?;
    let timeouts = match &rule.timeouts {
        None => Timeouts::default(),
        Some(t) => {
            let request = t
                .request
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .flatten();
            let backend_request = t
                .backend_request
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .flatten();
            if let (Some(r), Some(b)) = (request, backend_request) {
                if b > r {
                    return Err(format!(
                        "backendRequest timeout {b:?} exceeds request timeout {r:?}"
                    ));
                }
            }
            Timeouts {
                request,
                backend_request,
            }
        }
    };
    Ok(RuleParts {
        matches,
        filters,
        timeouts,
    })
}

fn default_match() -> RouteMatch {
    RouteMatch {
        path: PathMatch::Prefix("/".into()),
        headers: Vec::new(),
        query: Vec::new(),
        method: None,
    }
}

fn anchored(pattern: &str) -> Result<Arc<regex::Regex>, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(Arc::new)
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

fn value_match(spec: &ValueMatchSpec) -> Result<ValueMatch, String> {
    match spec.type_.as_deref().unwrap_or("Exact") {
        "Exact" => Ok(ValueMatch::Exact(spec.value.as_str().into())),
        "RegularExpression" => anchored(&spec.value).map(ValueMatch::RegularExpression),
        other => Err(format!("unsupported match type {other:?}")),
    }
}

fn route_match(spec: &HttpRouteMatch) -> Result<RouteMatch, String> {
    let path = match &spec.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => {
            let value = p.value.as_deref().unwrap_or("/");
            match p.type_.as_deref().unwrap_or("PathPrefix") {
                "Exact" | "PathPrefix" if !value.starts_with('/') => {
                    return Err(format!("path {value:?} does not start with /"));
                }
                "Exact" => PathMatch::Exact(value.into()),
                "PathPrefix" => PathMatch::Prefix(value.into()),
                "RegularExpression" => PathMatch::RegularExpression(anchored(value)?),
                other => return Err(format!("unsupported path match type {other:?}")),
            }
        }
    };
    let mut headers: Vec<HeaderMatch> = Vec::with_capacity(spec.headers.len());
    for h in &spec.headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", h.name))?;
        // The spec: of several matches on the same header, the first one counts.
        if headers.iter().any(|m| m.name == name) {
            continue;
        }
        headers.push(HeaderMatch {
            name,
            value: value_match(h)?,
        });
    }
    let mut query: Vec<QueryMatch> = Vec::with_capacity(spec.query_params.len());
    for q in &spec.query_params {
        if q.name.is_empty() {
            return Err("empty query parameter name".into());
        }
        if query.iter().any(|m| *m.name == *q.name) {
            continue;
        }
        query.push(QueryMatch {
            name: q.name.as_str().into(),
            value: value_match(q)?,
        });
    }
    let method = spec
        .method
        .as_deref()
        .map(|m| {
            http::Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))
        })
        .transpose()?;
    Ok(RouteMatch {
        path,
        headers,
        query,
        method,
    })
}

fn header_modifier(spec: Option<&HeaderFilterSpec>) -> Result<HeaderModifier, String> {
    let spec = spec.ok_or("header modifier filter without its settings")?;
    let pair = |h: &crate::gateway::controller::types::HeaderSpec| -> Result<_, String> {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", h.name))?;
        let value = http::HeaderValue::from_str(&h.value)
            .map_err(|_| format!("invalid value for header {:?}", h.name))?;
        Ok((name, value))
    };
    Ok(HeaderModifier {
        set: spec.set.iter().map(pair).collect::<Result<_, _>>()?,
        add: spec.add.iter().map(pair).collect::<Result<_, _>>()?,
        remove: spec
            .remove
            .iter()
            .map(|n| {
                http::HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("invalid header name {n:?}"))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn path_modifier(spec: Option<&PathModifierSpec>) -> Result<Option<PathModifier>, String> {
    let Some(spec) = spec else { return Ok(None) };
    match spec.type_.as_str() {
        "ReplaceFullPath" => Ok(Some(PathModifier::Full(
            spec.replace_full_path.as_deref().unwrap_or("/").into(),
        ))),
        "ReplacePrefixMatch" => Ok(Some(PathModifier::Prefix(
            spec.replace_prefix_match.as_deref().unwrap_or("/").into(),
        ))),
        other => Err(format!("unsupported path modifier {other:?}")),
    }
}

/// Convert a filter list (a rule's or a backendRef's).
pub fn filters(specs: &[HttpRouteFilter]) -> Result<Vec<Filter>, String> {
    specs.iter().map(filter).collect()
}

fn filter(spec: &HttpRouteFilter) -> Result<Filter, String> {
    match spec.type_.as_str() {
        "RequestHeaderModifier" => {
            header_modifier(spec.request_header_modifier.as_ref()).map(Filter::RequestHeaders)
        }
        "ResponseHeaderModifier" => {
            header_modifier(spec.response_header_modifier.as_ref()).map(Filter::ResponseHeaders)
        }
        "RequestRedirect" => {
            let r = spec
                .request_redirect
                .as_ref()
                .ok_or("RequestRedirect filter without its settings")?;
            let scheme = match r.scheme.as_deref() {
                None => None,
                Some(s @ ("http" | "https")) => Some(s.into()),
                Some(other) => return Err(format!("unsupported redirect scheme {other:?}")),
            };
            let status = match r.status_code.unwrap_or(302) {
                code @ (301 | 302 | 303 | 307 | 308) => {
                    http::StatusCode::from_u16(u16::try_from(code).unwrap_or(302))
                        .unwrap_or(http::StatusCode::FOUND)
                }
                other => return Err(format!("unsupported redirect status {other}")),
            };
            let port = r
                .port
                .map(|p| {
                    u16::try_from(p)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or(format!("invalid redirect port {p}"))
                })
                .transpose()?;
            Ok(Filter::Redirect(Redirect {
                scheme,
                hostname: r.hostname.as_deref().map(Into::into),
                path: path_modifier(r.path.as_ref())?,
                port,
                status,
            }))
        }
        "URLRewrite" => {
            let r = spec
                .url_rewrite
                .as_ref()
                .ok_or("URLRewrite filter without its settings")?;
            Ok(Filter::Rewrite(Rewrite {
                hostname: r.hostname.as_deref().map(Into::into),
                path: path_modifier(r.path.as_ref())?,
            }))
        }
        other => Err(format!("unsupported filter {other:?}")),
    }
}

/// A Gateway API duration (`1h`, `30s`, `500ms`, `1m30s`: one to four number+unit parts);
/// zero means no timeout (`None`).
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let err = || format!("invalid duration {s:?}");
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 || digits > 5 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(err());
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).map_err(|_| err())?;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(err());
    }
    Ok((!total.is_zero()).then_some(total))
}
