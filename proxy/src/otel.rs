//! The standard `OTEL_*` trace-export variables, checked before any port is bound so a typo exits
//! 64 naming the variable instead of silently exporting nothing.
//!
//! The OpenTelemetry SDK and the OTLP exporter read these variables themselves when
//! [`crate::telemetry::Tracing`] is built (endpoint, headers, sampler, resource, batch tuning).
//! They skip or reinterpret what they cannot use, so this module refuses, with the same
//! precedence rules they apply, every value they would not take as written, and reads the one
//! variable they do not know: the CA bundle of `OTEL_EXPORTER_OTLP_CERTIFICATE`. Header values are
//! percent-decoded with the `percent-encoding` crate plus the strict check it leaves out (a
//! malformed `%` escape is an error, not literal text).

use crate::config::{Strings, bad};
use outrigger_daemon::ConfigError;

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// What trace export needs beyond what the SDK reads itself; present when tracing is on.
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// PEM CA bundle trusted for an https:// endpoint, on top of the system roots.
    pub certificate: Option<std::path::PathBuf>,
}

/// Checks the `OTEL_*` variables; `None` when no endpoint is set (tracing off).
pub fn from_env(env: &dyn Strings) -> Result<Option<OtelConfig>, ConfigError> {
    let non_empty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    // The exporter takes the traces URL as written and appends the signal path to the base one.
    let (key, endpoint) = if let Some(e) = non_empty(TRACES_ENDPOINT) {
        (TRACES_ENDPOINT, e)
    } else if let Some(e) = non_empty(ENDPOINT) {
        let path = if e.ends_with('/') {
            "v1/traces"
        } else {
            "/v1/traces"
        };
        (ENDPOINT, format!("{e}{path}"))
    } else {
        return Ok(None);
    };
    // A URL it cannot parse would make the exporter fall back to localhost without a word.
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        || endpoint.parse::<http::Uri>().is_err()
    {
        return Err(bad(
            key,
            format!("{endpoint:?} must be an http:// or https:// URL"),
        ));
    }
    if let Some(p) = non_empty("OTEL_EXPORTER_OTLP_PROTOCOL")
        && p != "http/protobuf"
    {
        return Err(bad(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!("{p:?} is not supported (only http/protobuf)"),
        ));
    }
    // The exporter reads the traces variable first, then the generic one, and fails to build on
    // any value but a compiled-in algorithm: gzip is; zstd is not, and "none" means "unset it".
    if let Some((key, c)) = [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ]
    .into_iter()
    .find_map(|key| env.get(key).map(|c| (key, c)))
        && c != "gzip"
    {
        return Err(bad(
            key,
            format!("{c:?} is not supported (gzip, or leave it unset for none)"),
        ));
    }
    // The exporter reads the traces list whenever it is set, even empty.
    if let Some((key, list)) = env
        .get(TRACES_HEADERS)
        .map(|l| (TRACES_HEADERS, l))
        .or_else(|| env.get(HEADERS).map(|l| (HEADERS, l)))
    {
        check_headers(key, &list)?;
    }
    if let Some(attrs) = env.get(RESOURCE_ATTRIBUTES) {
        for pair in pairs(&attrs) {
            if !pair.contains('=') {
                return Err(bad(
                    RESOURCE_ATTRIBUTES,
                    format!("{pair:?} is not key=value"),
                ));
            }
        }
    }
    check_sampler(env)?;
    Ok(Some(OtelConfig {
        certificate: certificate(env)?,
    }))
}

/// The non-empty entries of a `k=v,k2=v2` list, split the way the SDK splits them.
fn pairs(list: &str) -> impl Iterator<Item = &str> {
    list.split_terminator(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// Every header must decode and be valid HTTP: the exporter drops the ones that are not, and
/// sends a malformed escape as literal text.
fn check_headers(key: &str, list: &str) -> Result<(), ConfigError> {
    for pair in pairs(list) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(key, format!("{pair:?} is not key=value")))?;
        // Values are percent-encoded (W3C Baggage octets), e.g. `Bearer%20token`.
        let value = percent_decode(value.trim())
            .ok_or_else(|| bad(key, format!("{pair:?} has a bad percent-encoding")))?;
        if http::HeaderName::from_bytes(name.trim().as_bytes()).is_err()
            || http::HeaderValue::from_str(&value).is_err()
        {
            return Err(bad(key, format!("{pair:?} is not a valid HTTP header")));
        }
    }
    Ok(())
}

/// The SDK falls back to its default sampler on an unknown name and to a ratio of 1 on an
/// unparsable one (it does not trim): both are refused here.
fn check_sampler(env: &dyn Strings) -> Result<(), ConfigError> {
    let Some(name) = env.get(SAMPLER).filter(|s| !s.trim().is_empty()) else {
        return Ok(());
    };
    match name.as_str() {
        "always_on" | "always_off" | "parentbased_always_on" | "parentbased_always_off" => Ok(()),
        "traceidratio" | "parentbased_traceidratio" => match env.get(SAMPLER_ARG) {
            Some(a) if !a.trim().is_empty() => a
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .map(|_| ())
                .ok_or_else(|| bad(SAMPLER_ARG, format!("{a:?} is not a ratio in [0, 1]"))),
            _ => Ok(()),
        },
        other => Err(bad(SAMPLER, format!("{other:?} is not supported"))),
    }
}

/// The CA bundle for an https:// collector (the traces variable first), read once here so an
/// unreadable or certificate-less file is a configuration error.
fn certificate(env: &dyn Strings) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let non_empty = |k: &'static str| env.get(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v));
    let Some((key, path)) = non_empty("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
        .or_else(|| non_empty("OTEL_EXPORTER_OTLP_CERTIFICATE"))
    else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path.trim()).map_err(|e| bad(key, format!("cannot read {path:?}: {e}")))?;
    if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
        return Err(bad(key, format!("{path:?} holds no PEM certificate")));
    }
    Ok(Some(std::path::PathBuf::from(path.trim())))
}

/// Decodes `%XX` escapes; `None` on a malformed escape (a `%` not followed by two hex digits,
/// which `percent-encoding` would pass through as literal text) or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse, refused};

    #[test]
    fn bad_otel_settings_name_the_variable() {
        assert_eq!(
            refused(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://x:4317")]),
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        );
        assert_eq!(
            refused(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:4318"),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")
                ]
            ),
            "OTEL_EXPORTER_OTLP_CERTIFICATE"
        );
        assert_eq!(
            refused(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization")
                ]
            ),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        );
        assert_eq!(
            refused(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz")
                ]
            ),
            "OTEL_EXPORTER_OTLP_HEADERS"
        );
        assert_eq!(
            refused(
                &[],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                    ("OTEL_TRACES_SAMPLER", "sometimes")
                ]
            ),
            "OTEL_TRACES_SAMPLER"
        );
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(
            percent_decode("Bearer%20t0k").as_deref(),
            Some("Bearer t0k")
        );
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("\u{20ac}"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        // The crate alone passes these through as literal text.
        for lenient in ["a=%zz", "%", "50%", "%4"] {
            assert!(
                percent_encoding::percent_decode_str(lenient)
                    .decode_utf8()
                    .is_ok(),
                "{lenient}"
            );
            assert_eq!(percent_decode(lenient), None, "{lenient}");
        }
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    // What the SDK then makes of these values (the signal path, decoded headers, resource,
    // default service name, sampler) is asserted on the wire in tests/tracing.rs.
    #[test]
    fn otel_https_endpoint_and_headers() {
        let c = parse(
            &[],
            &[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example:4318",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization=Bearer%20t0k,x-scope-orgid=team-a",
                ),
            ],
        )
        .unwrap();
        assert!(c.otel.unwrap().certificate.is_none());
    }

    #[test]
    fn otel_endpoint_gets_signal_path() {
        let c = parse(
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
                ("OTEL_RESOURCE_ATTRIBUTES", "a=b, c=d"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ],
        )
        .unwrap();
        assert!(c.otel.is_some());
    }

    /// Values the SDK would skip or reinterpret without a word are refused, naming the variable
    /// it would have read.
    #[test]
    fn values_the_sdk_would_misread_are_refused() {
        let http = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        for (key, value) in [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:4318/v 1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", ""),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,c"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=%e2%82"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=b,c"),
        ] {
            assert_eq!(refused(&[], &[http, (key, value)]), key, "{key}={value}");
        }
        for arg in [" 0.5", "1.5", "half"] {
            let sampler = ("OTEL_TRACES_SAMPLER", "traceidratio");
            let arg = ("OTEL_TRACES_SAMPLER_ARG", arg);
            assert_eq!(refused(&[], &[http, sampler, arg]), arg.0, "{arg:?}");
        }
        // The exporter reads the traces list whenever it is set: that one is checked.
        let headers = [
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""),
        ];
        assert!(parse(&[], &[http, headers[0], headers[1]]).is_ok());
        // Without an endpoint nothing is exported and nothing else is read.
        assert!(
            parse(&[], &[("OTEL_TRACES_SAMPLER", "sometimes")])
                .unwrap()
                .otel
                .is_none()
        );
    }
}
