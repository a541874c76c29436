//! Request matching over the table: the listener of a port by the request's host, the virtual
//! host, then the first rule whose match holds. Pure functions over [`crate::gateway::table`].

use std::borrow::Cow;

use http::{HeaderMap, Method};

use crate::gateway::table::{
    Hostname, Listener, PathMatch, Port, RouteMatch, Rule, ValueMatch, VirtualHost,
};

/// The host a request names (Host header, else the URI's authority), without its port, lower
/// case (copied only when it is not lower case already).
pub fn request_host<'r>(uri: &'r http::Uri, headers: &'r HeaderMap) -> Cow<'r, str> {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("");
    let host = strip_port(raw);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// How specifically `pattern` matches `host` (higher is more specific), or `None` if it does
/// not: an exact name beats any wildcard, a longer wildcard beats a shorter one, and no
/// hostname (matches everything) comes last.
pub fn specificity(pattern: Option<&Hostname>, host: &str) -> Option<(u8, usize)> {
    match pattern {
        None => Some((0, 0)),
        Some(Hostname::Exact(h)) => (**h == *host).then_some((2, h.len())),
        // `.example.com` needs at least one label before it.
        Some(Hostname::Wildcard(suffix)) => {
            (host.len() > suffix.len() && host.ends_with(&**suffix)).then_some((1, suffix.len()))
        }
    }
}

fn most_specific<'t, T>(
    items: &'t [T],
    host: &str,
    pattern: impl Fn(&T) -> Option<&Hostname>,
) -> Option<&'t T> {
    let mut best: Option<(&T, (u8, usize))> = None;
    for item in items {
        if let Some(score) = specificity(pattern(item), host)
            && best.is_none_or(|(_, b)| score > b)
        {
            best = Some((item, score));
        }
    }
    best.map(|(item, _)| item)
}

/// The listener of `port` serving `host`.
pub fn listener<'t>(port: &'t Port, host: &str) -> Option<&'t Listener> {
    most_specific(&port.listeners, host, |l| l.hostname.as_ref())
}

/// The virtual host of `listener` serving `host`.
pub fn virtual_host<'t>(listener: &'t Listener, host: &str) -> Option<&'t VirtualHost> {
    most_specific(&listener.virtual_hosts, host, |v| v.hostname.as_ref())
}

/// The first rule of `vhost` matching the request (the rules are in precedence order).
pub fn rule<'t>(
    vhost: &'t VirtualHost,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Option<&'t Rule> {
    let path = uri.path();
    let query = uri.query();
    vhost
        .rules
        .iter()
        .find(|r| matches(&r.matches, method, path, query, headers))
}

/// Whether `m` holds for the request.
pub fn matches(
    m: &RouteMatch,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> bool {
    path_matches(&m.path, path)
        && m.method.as_ref().is_none_or(|want| want == method)
        && m.headers.iter().all(|h| {
            headers
                .get(&h.name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| value_matches(&h.value, v))
        })
        && m.query
            .iter()
            .all(|q| query_param(query, &q.name).is_some_and(|v| value_matches(&q.value, &v)))
}

/// The length of the request path a prefix match matched (for `ReplacePrefixMatch`).
pub fn prefix_len(m: &PathMatch) -> Option<usize> {
    match m {
        PathMatch::Prefix(p) => Some(p.trim_end_matches('/').len()),
        _ => None,
    }
}

fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Exact(p) => path == &**p,
        PathMatch::Prefix(p) => {
            let p = p.trim_end_matches('/');
            // At a segment boundary: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
            path.starts_with(p) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
        }
        PathMatch::RegularExpression(re) => re.is_match(path),
    }
}

fn value_matches(m: &ValueMatch, v: &str) -> bool {
    match m {
        ValueMatch::Exact(want) => v == &**want,
        ValueMatch::RegularExpression(re) => re.is_match(v),
    }
}

/// The first value of query parameter `name`, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn h(s: &str) -> Hostname {
        crate::gateway::routes_file::hostname(s)
    }

    #[test]
    fn hosts_prefer_exact_then_longest_wildcard_then_any() {
        assert_eq!(
            specificity(Some(&h("a.example.com")), "a.example.com"),
            Some((2, 13))
        );
        assert!(specificity(Some(&h("*.example.com")), "example.com").is_none());
        assert!(specificity(Some(&h("*.example.com")), "a.b.example.com").is_some());
        assert!(
            specificity(Some(&h("*.b.example.com")), "a.b.example.com")
                > specificity(Some(&h("*.example.com")), "a.b.example.com")
        );
        assert!(specificity(None, "x") < specificity(Some(&h("*.x.y")), "a.x.y"));
        assert_eq!(strip_port("Foo.test:8080"), "Foo.test");
        assert_eq!(strip_port("[::1]:80"), "::1");
        let mut hm = HeaderMap::new();
        hm.insert(http::header::HOST, "Foo.Example.COM:81".parse().unwrap());
        assert_eq!(
            request_host(&http::Uri::from_static("/"), &hm),
            "foo.example.com"
        );
    }

    #[test]
    fn paths_headers_and_query() {
        let prefix = PathMatch::Prefix(Arc::from("/foo/"));
        assert!(path_matches(&prefix, "/foo"));
        assert!(path_matches(&prefix, "/foo/bar"));
        assert!(!path_matches(&prefix, "/foobar"));
        assert!(path_matches(
            &PathMatch::Prefix(Arc::from("/")),
            "/anything"
        ));
        assert_eq!(
            query_param(Some("a=1&b=x%20y"), "b").as_deref(),
            Some("x y")
        );
        assert_eq!(query_param(Some("a=1"), "A"), None);
    }
}
