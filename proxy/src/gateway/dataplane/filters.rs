//! HTTPRoute filters on the request path: header modifiers, `RequestRedirect` (the `Location`
//! built as the Gateway API spec says) and `URLRewrite` (hostname, `ReplaceFullPath`,
//! `ReplacePrefixMatch`).

use http::HeaderMap;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};

use crate::gateway::table::{HeaderModifier, PathModifier, Redirect, Rewrite};

/// Apply set, add and remove, in that order.
pub fn modify_headers(headers: &mut HeaderMap, m: &HeaderModifier) {
    for (name, value) in &m.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &m.add {
        headers.append(name.clone(), value.clone());
    }
    for name in &m.remove {
        headers.remove(name);
    }
}

/// The path after `modifier`; `prefix_len`: how much of `path` the rule's prefix match matched.
pub fn modified_path(path: &str, modifier: &PathModifier, prefix_len: Option<usize>) -> String {
    match (modifier, prefix_len) {
        (PathModifier::Prefix(replacement), Some(len)) if len <= path.len() => {
            let rest = &path[len..];
            let mut out = replacement.trim_end_matches('/').to_owned();
            out.push_str(rest);
            if !out.starts_with('/') {
                out.insert(0, '/');
            }
            out
        }
        (PathModifier::Prefix(p) | PathModifier::Full(p), _) => p.to_string(),
    }
}

fn with_query(path: &str, uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

/// Rewrite the request's target and Host as `rewrite` says.
pub fn rewrite(
    uri: &mut Uri,
    headers: &mut HeaderMap,
    rewrite: &Rewrite,
    prefix_len: Option<usize>,
) {
    if let Some(host) = &rewrite.hostname
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, v);
    }
    if let Some(m) = &rewrite.path {
        let target = with_query(&modified_path(uri.path(), m, prefix_len), uri);
        if let Ok(pq) = PathAndQuery::try_from(target) {
            *uri = Uri::from(pq);
        }
    }
}

/// The `Location` of a redirect. `scheme`, `host` and `port` are the request's own (the port the
/// listener serves); unset parts of the redirect keep them. The port is derived as the spec asks:
/// the redirect's port if set, else the well-known port of a redirect scheme, else the
/// listener's; it is left out when it is the scheme's default.
pub fn location(
    r: &Redirect,
    scheme: &str,
    host: &str,
    listener_port: u16,
    uri: &Uri,
    prefix_len: Option<usize>,
) -> String {
    let out_scheme = r.scheme.as_deref().unwrap_or(scheme);
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => p,
        (None, Some(s)) if s.as_ref() == "https" => 443,
        (None, Some(s)) if s.as_ref() == "http" => 80,
        _ => listener_port,
    };
    let default = matches!((out_scheme, port), ("http", 80) | ("https", 443));
    let host = r.hostname.as_deref().unwrap_or(host);
    let path = match &r.path {
        Some(m) => modified_path(uri.path(), m, prefix_len),
        None => uri.path().to_owned(),
    };
    let target = with_query(&path, uri);
    if default {
        format!("{out_scheme}://{host}{target}")
    } else {
        format!("{out_scheme}://{host}:{port}{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn prefix_replacement_keeps_the_rest_and_one_slash() {
        let m = |s: &str| PathModifier::Prefix(Arc::from(s));
        assert_eq!(
            modified_path("/prefix/one/two", &m("/one"), Some(11)),
            "/one/two"
        );
        assert_eq!(modified_path("/prefix/one/two", &m("/"), Some(11)), "/two");
        assert_eq!(modified_path("/prefix/one", &m("/"), Some(11)), "/");
        assert_eq!(modified_path("/prefix/one", &m("/x/"), Some(11)), "/x");
        assert_eq!(
            modified_path("/a", &PathModifier::Full(Arc::from("/full")), Some(2)),
            "/full"
        );
    }

    #[test]
    fn location_derives_the_port() {
        let uri = Uri::from_static("/p?q=1");
        let r = Redirect {
            scheme: Some(Arc::from("https")),
            hostname: None,
            path: None,
            port: None,
            status: http::StatusCode::FOUND,
        };
        assert_eq!(
            location(&r, "http", "a.test", 8080, &uri, None),
            "https://a.test/p?q=1"
        );
        let r = Redirect { scheme: None, ..r };
        assert_eq!(
            location(&r, "http", "a.test", 8080, &uri, None),
            "http://a.test:8080/p?q=1"
        );
        let r = Redirect {
            port: Some(80),
            hostname: Some(Arc::from("b.test")),
            ..r
        };
        assert_eq!(
            location(&r, "http", "a.test", 8080, &uri, None),
            "http://b.test/p?q=1"
        );
    }
}
