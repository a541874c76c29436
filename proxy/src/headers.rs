//! Header rewriting for a forwarding hop (RFC 9110 §7.6.1): connection-specific ("hop-by-hop")
//! headers are removed in both directions, and `X-Forwarded-For` / `X-Forwarded-Proto` are added
//! on the way to the app; and what a head's connection and framing fields say ([`FieldFacts`]),
//! gathered by the HTTP/1 codecs as they parse or write it.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Whether `name` is always connection-specific. Standard names compare as enum tags, so one
/// pass over a request's few keys is cheaper than a hash lookup per hop-by-hop name.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || matches!(
            name.as_str(),
            "keep-alive" | "proxy-connection" | "http2-settings"
        )
}

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Whether a field value is text: visible ASCII and tabs, as `HeaderValue::to_str` accepts it.
/// The list rules below work on the bytes of such values (no UTF-8 pass: they are ASCII).
fn is_text(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (32..127).contains(&b))
}

/// The elements of a comma-separated list field value, trimmed (none if it is not text).
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    is_text(value)
        .then_some(value)
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// `close` and `keep-alive`: the `Connection` tokens that name no header to remove with it
/// (`Keep-Alive` is hop-by-hop in its own right).
fn is_plain_connection_token(token: &[u8]) -> bool {
    token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive")
}

/// Whether the `Connection` header lists `token` (case-insensitive).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| tokens(v.as_bytes()))
        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether a `Transfer-Encoding` value's last coding is `chunked` (RFC 9112 §6.3: only then is
/// a body with `Transfer-Encoding` delimited by its coding).
fn ends_in_chunked(value: &[u8]) -> bool {
    is_text(value)
        && value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A `Content-Length` that is not one valid length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Content-Length")]
pub struct InvalidContentLength;

/// Adds one `Content-Length` field to the length `length` says so far (RFC 9112 §6.3): a list or
/// repeated field of one value counts as that value; anything else (signs, blanks, values that
/// disagree, an overflow) is invalid. `None` so far: no field yet.
fn add_content_length(length: &mut Option<u64>, value: &[u8]) -> Result<(), InvalidContentLength> {
    if !is_text(value) {
        return Err(InvalidContentLength);
    }
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() {
            return Err(InvalidContentLength);
        }
        let n = item.iter().try_fold(0u64, |n, &b| {
            let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
            n.checked_mul(10)?.checked_add(digit)
        });
        let n = n.ok_or(InvalidContentLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(InvalidContentLength);
        }
        *length = Some(n);
    }
    Ok(())
}

/// What a message head's connection and framing fields say, gathered field by field while the
/// head is parsed: the codecs then decide framing and keep-alive without looking the fields up
/// in the map again.
#[derive(Debug)]
pub struct FieldFacts {
    /// A `Connection` field is present.
    pub connection: bool,
    /// `Connection` lists `close`.
    pub close: bool,
    /// `Connection` lists `keep-alive`.
    pub keep_alive: bool,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    /// An `Upgrade` field is present.
    pub upgrade: bool,
    /// Whether the last `Transfer-Encoding` field ends in `chunked`; `None` without one.
    pub chunked_last: Option<bool>,
    /// The `Content-Length` so far: `Ok(None)` without one, `Err` once a field was invalid.
    pub content_length: Result<Option<u64>, InvalidContentLength>,
    /// Whether the first `Expect` field is `100-continue`; `None` without one.
    pub expect_continue: Option<bool>,
}

impl FieldFacts {
    /// Takes note of one field (`value` as it came off the wire). Returns whether the field has a
    /// place in the message's map: a `Connection` that says only `close` or `keep-alive` does
    /// not, since it is this hop's alone and [`strip_hop_by_hop`] would only remove it again.
    pub fn see(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        // Standard names compare as enum tags: nothing is hashed here.
        if *name == header::CONNECTION {
            self.connection = true;
            let mut plain = true;
            for token in tokens(value) {
                let close = token.eq_ignore_ascii_case(b"close");
                let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                self.close |= close;
                self.keep_alive |= keep_alive;
                self.connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                plain &= close || keep_alive;
            }
            return !plain;
        } else if *name == header::CONTENT_LENGTH {
            if let Ok(length) = &mut self.content_length
                && let Err(e) = add_content_length(length, value)
            {
                self.content_length = Err(e);
            }
        } else if *name == header::TRANSFER_ENCODING {
            self.chunked_last = Some(ends_in_chunked(value));
        } else if *name == header::UPGRADE {
            self.upgrade = true;
        } else if *name == header::EXPECT && self.expect_continue.is_none() {
            self.expect_continue = Some(value.eq_ignore_ascii_case(b"100-continue"));
        }
        true
    }

    /// Whether a `Content-Length` field is present: every field leaves a length or an error.
    pub fn has_content_length(&self) -> bool {
        self.content_length != Ok(None)
    }

    /// Whether the message asks for a protocol upgrade ([`wants_upgrade`]).
    pub fn wants_upgrade(&self) -> bool {
        self.upgrade && self.connection_upgrade
    }
}

impl Default for FieldFacts {
    fn default() -> Self {
        Self {
            connection: false,
            close: false,
            keep_alive: false,
            connection_upgrade: false,
            upgrade: false,
            chunked_last: None,
            content_length: Ok(None),
            expect_continue: None,
        }
    }
}

/// Remove hop-by-hop headers, including every header named in `Connection`. With `keep_upgrade`
/// the `Upgrade` header and a `Connection: upgrade` survive (protocol switch pass-through).
/// `TE: trailers` is kept on requests because it is end-to-end information gRPC relies on.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, is_request: bool) {
    // One walk over the entries (no hashing) finds the two common cases: no hop-by-hop field
    // (most requests), and a `Connection` that only says `close` or `keep-alive` beside no other
    // hop-by-hop field (most responses), where removing that one name is all there is to do.
    let mut connection = false;
    let mut only_plain_connection = !keep_upgrade;
    for (name, value) in headers.iter() {
        if *name == header::CONNECTION {
            connection = true;
            only_plain_connection &= tokens(value.as_bytes()).all(is_plain_connection_token);
        } else if is_hop_by_hop(name) {
            only_plain_connection = false;
        }
    }
    if only_plain_connection {
        if connection {
            headers.remove(header::CONNECTION);
        }
        return;
    }
    let te_trailers = is_request
        && headers
            .get_all(header::TE)
            .iter()
            .flat_map(|v| tokens(v.as_bytes()))
            .any(|t| t.eq_ignore_ascii_case(b"trailers"));
    // The headers `Connection` names are removed by name. Its values are found by walking the
    // few entries (no hashing) and cloned (a reference count each, no copy) so the map can change
    // while they are read; a single field, the usual case, needs no allocation.
    let mut listed = headers
        .iter()
        .filter(|(k, _)| *k == header::CONNECTION)
        .map(|(_, v)| v.clone());
    let first = listed.next();
    let more: Vec<HeaderValue> = listed.collect();
    if first.is_some() {
        headers.remove(header::CONNECTION);
    }
    for value in first.iter().chain(&more) {
        for token in tokens(value.as_bytes()) {
            // Nearly every `Connection` says `close` or `keep-alive`: the first names no header,
            // the second is removed below anyway, and a lookup by name costs more than all the
            // rest of this function.
            let skip = is_plain_connection_token(token)
                || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade"));
            // Removed by `&str` (no name allocated); a token that is no valid header name
            // matches nothing. Tokens are visible ASCII, so the conversion never fails.
            if !skip && let Ok(token) = std::str::from_utf8(token) {
                headers.remove(token);
            }
        }
    }
    // The always-hop-by-hop names: one removal per pass, since a message carries one or two.
    while let Some(name) = headers
        .keys()
        .find(|k| is_hop_by_hop(k) && !(keep_upgrade && *k == header::UPGRADE))
        .cloned()
    {
        headers.remove(&name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

// Evaluated at compile time: `from_static` at run time validates the name on every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The client's address as an `X-Forwarded-For` element, computed once per connection.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Append the client (from [`forwarded_for`]) to `X-Forwarded-For` and set `X-Forwarded-Proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client: &HeaderValue, tls: bool) {
    let xff = X_FORWARDED_FOR;
    let value = if headers.contains_key(&xff) {
        // Collapse repeated fields into one list so the client ends up last.
        let mut list = headers
            .get_all(&xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(client.to_str().unwrap_or("unknown"));
        HeaderValue::from_str(&list).ok()
    } else {
        Some(client.clone())
    };
    if let Some(v) = value {
        headers.insert(xff, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// `pairs` after `strip_hop_by_hop(.., upgrade, te)`.
    fn stripped(pairs: &[(&str, &str)], upgrade: bool, te: bool) -> HeaderMap {
        let mut h = map(pairs);
        strip_hop_by_hop(&mut h, upgrade, te);
        h
    }

    /// `pairs` after `add_forwarded` for a client at `ip`.
    fn forwarded(pairs: &[(&str, &str)], ip: &str, tls: bool) -> HeaderMap {
        let mut h = map(pairs);
        add_forwarded(&mut h, &forwarded_for(ip.parse().unwrap()), tls);
        h
    }

    /// The facts of `pairs`, seen in order.
    fn facts(pairs: &[(&str, &[u8])]) -> FieldFacts {
        let mut f = FieldFacts::default();
        for (k, v) in pairs {
            let _ = f.see(&HeaderName::from_bytes(k.as_bytes()).unwrap(), v);
        }
        f
    }

    #[test]
    fn field_facts_follow_the_list_and_repetition_rules() {
        let f = facts(&[
            ("Connection", b"Keep-Alive, Upgrade"),
            ("upgrade", b"websocket"),
        ]);
        assert!(f.connection && f.keep_alive && !f.close && f.wants_upgrade());
        let f = facts(&[("x-other", b"close"), ("connection", b"\xffclose")]);
        assert!(
            f.connection && !f.close,
            "a value that is not text lists nothing"
        );
        assert!(!facts(&[("connection", b"upgrade")]).wants_upgrade());
        let mut f = FieldFacts::default();
        assert!(
            !f.see(&header::CONNECTION, b"Close, keep-alive"),
            "a plain one is not kept"
        );
        assert!(
            f.see(&header::CONNECTION, b"close, x-a"),
            "one naming a field is"
        );
        assert!(f.see(&header::CONTENT_LENGTH, b"1"));

        let f = facts(&[("content-length", b"5"), ("Content-Length", b"5, 5")]);
        assert_eq!(
            (f.has_content_length(), f.content_length),
            (true, Ok(Some(5)))
        );
        for bad in [
            &b"5, 6"[..],
            b"+5",
            b"",
            b" ",
            b"99999999999999999999",
            b"5\x80",
        ] {
            let f = facts(&[("content-length", b"5"), ("content-length", bad)]);
            assert_eq!(f.content_length, Err(InvalidContentLength), "{bad:?}");
        }
        // Invalid stays invalid whatever follows.
        let f = facts(&[("content-length", b"x"), ("content-length", b"5")]);
        assert_eq!(f.content_length, Err(InvalidContentLength));
        assert_eq!(facts(&[]).content_length, Ok(None));
        assert!(!facts(&[]).has_content_length());
        assert!(facts(&[("content-length", b"")]).has_content_length());

        let te = |v: &[&[u8]]| {
            facts(
                &v.iter()
                    .map(|v| ("transfer-encoding", *v))
                    .collect::<Vec<_>>(),
            )
            .chunked_last
        };
        assert_eq!(te(&[b"gzip, Chunked "]), Some(true));
        assert_eq!(
            te(&[b"chunked", b"gzip"]),
            Some(false),
            "the last field counts"
        );
        assert_eq!(te(&[]), None);

        let f = facts(&[("expect", b"100-Continue"), ("expect", b"other")]);
        assert_eq!(f.expect_continue, Some(true), "the first field counts");
        assert_eq!(facts(&[("expect", b"x")]).expect_continue, Some(false));
    }

    /// Each case: the headers in, `upgrade` and `te`, and every header that must come out.
    #[test]
    fn hop_by_hop_headers_are_stripped() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            bool,
            bool,
            &'a [(&'a str, &'a str)],
        );
        let cases: [Case; 4] = [
            // Listed and standard hop-by-hop headers; `te` keeps only `trailers`.
            (
                &[
                    ("connection", "keep-alive, X-Secret"),
                    ("x-secret", "1"),
                    ("keep-alive", "timeout=5"),
                    ("transfer-encoding", "chunked"),
                    ("te", "trailers, deflate"),
                    ("x-end-to-end", "yes"),
                ],
                false,
                true,
                &[("te", "trailers"), ("x-end-to-end", "yes")],
            ),
            // Names from every `Connection` field go, in any case.
            (
                &[
                    ("connection", "close"),
                    ("connection", "X-Other , x-THIRD,, not a name"),
                    ("x-other", "1"),
                    ("x-third", "1"),
                    ("x-kept", "1"),
                ],
                false,
                false,
                &[("x-kept", "1")],
            ),
            (
                &[
                    ("connection", "Upgrade, X-Secret"),
                    ("upgrade", "websocket"),
                    ("x-secret", "1"),
                ],
                true,
                true,
                &[("upgrade", "websocket"), ("connection", "upgrade")],
            ),
            // A plain `Connection` field alone is removed by itself (with one that names a
            // header, the full path runs: the cases above).
            (
                &[
                    ("server", "app"),
                    ("connection", "Keep-Alive"),
                    ("content-length", "2"),
                ],
                false,
                false,
                &[("server", "app"), ("content-length", "2")],
            ),
        ];
        for (input, upgrade, te, output) in cases {
            assert_eq!(stripped(input, upgrade, te), map(output), "{input:?}");
        }
    }

    #[test]
    fn upgrade_survives_when_asked() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_for_appends() {
        let h = forwarded(&[("x-forwarded-for", "10.0.0.1")], "127.0.0.1", true);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn forwarded_for_collapses_repeated_fields_and_maps_v4_in_v6() {
        let v4_in_v6 = "::ffff:192.0.2.7";
        let h = forwarded(
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-for", "10.0.0.2"),
            ],
            v4_in_v6,
            false,
        );
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 192.0.2.7"]);
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");

        let fresh = forwarded(&[], v4_in_v6, false);
        assert_eq!(fresh.get("x-forwarded-for").unwrap(), "192.0.2.7");
    }

    #[test]
    fn a_request_without_hop_headers_is_untouched() {
        let mut h = map(&[("host", "a"), ("accept", "*/*"), ("te", "trailers")]);
        let before = h.clone();
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(h, before);
        let h = stripped(&[("host", "a"), ("accept", "*/*")], false, false);
        assert_eq!(h.len(), 2);
    }
}
