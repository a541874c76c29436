//! Trace export settings from the standard `OTEL_*` environment variables, checked before any
//! port is bound so a typo exits 64 naming the variable instead of silently exporting nothing.
//! `OTEL_EXPORTER_OTLP_HEADERS` values are percent-decoded with the `percent-encoding` crate plus
//! the strict check it leaves out (a malformed `%` escape is an error, not literal text).

use crate::config::{Strings, bad};
use outrigger_daemon::ConfigError;

/// OTLP trace export settings (from the standard `OTEL_*` variables).
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// Full URL spans are POSTed to (`.../v1/traces`).
    pub traces_endpoint: String,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// Extra resource attributes.
    pub resource_attributes: Vec<(String, String)>,
    /// Sampler.
    pub sampler: Sampler,
    /// PEM CA bundle trusted for an https:// endpoint, on top of the system roots.
    pub certificate: Option<std::path::PathBuf>,
    /// Extra request headers (e.g. authorization for a hosted collector).
    pub headers: Vec<(String, String)>,
}

/// Supported `OTEL_TRACES_SAMPLER` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with the ratio.
    Ratio(f64),
    /// `parentbased_always_on`
    ParentAlwaysOn,
    /// `parentbased_always_off`
    ParentAlwaysOff,
    /// `parentbased_traceidratio`
    ParentRatio(f64),
}

/// The OTLP trace export settings from the standard `OTEL_*` variables; `None` when no endpoint is
/// set (tracing off).
pub fn from_env(env: &dyn Strings) -> Result<Option<OtelConfig>, ConfigError> {
    let non_empty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    let endpoint = if let Some(e) = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        e
    } else if let Some(e) = non_empty("OTEL_EXPORTER_OTLP_ENDPOINT") {
        format!("{}/v1/traces", e.trim_end_matches('/'))
    } else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(bad(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{endpoint:?} must be an http:// or https:// URL"),
        ));
    }
    let per_signal = |generic: &'static str, traces: &'static str| {
        non_empty(traces)
            .map(|v| (traces, v))
            .or_else(|| non_empty(generic).map(|v| (generic, v)))
    };
    let certificate = match per_signal(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    ) {
        None => None,
        Some((key, path)) => {
            let pem = std::fs::read(path.trim())
                .map_err(|e| bad(key, format!("cannot read {path:?}: {e}")))?;
            if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
                return Err(bad(key, format!("{path:?} holds no PEM certificate")));
            }
            Some(std::path::PathBuf::from(path.trim()))
        }
    };
    let mut headers = Vec::new();
    if let Some((key, list)) = per_signal(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ) {
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(key, format!("{pair:?} is not key=value")))?;
            // Values are percent-encoded (W3C Baggage octets), e.g. `Bearer%20token`.
            let v = percent_decode(v.trim())
                .ok_or_else(|| bad(key, format!("{pair:?} has a bad percent-encoding")))?;
            let name = k.trim().to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(&v).is_err()
            {
                return Err(bad(key, format!("{pair:?} is not a valid HTTP header")));
            }
            headers.push((name, v));
        }
    }
    if let Some(p) = non_empty("OTEL_EXPORTER_OTLP_PROTOCOL")
        && p != "http/protobuf"
    {
        return Err(bad(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!("{p:?} is not supported (only http/protobuf)"),
        ));
    }
    let service_name = non_empty("OTEL_SERVICE_NAME").unwrap_or_else(|| "outrigger-proxy".into());
    let mut resource_attributes = Vec::new();
    if let Some(attrs) = non_empty("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in attrs.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                bad(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("{pair:?} is not key=value"),
                )
            })?;
            resource_attributes.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let ratio = || -> Result<f64, ConfigError> {
        match non_empty("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    bad(
                        "OTEL_TRACES_SAMPLER_ARG",
                        format!("{a:?} is not a ratio in [0, 1]"),
                    )
                }),
        }
    };
    let sampler = match non_empty("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") => Sampler::ParentAlwaysOn,
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()?),
        Some("parentbased_always_off") => Sampler::ParentAlwaysOff,
        Some("parentbased_traceidratio") => Sampler::ParentRatio(ratio()?),
        Some(other) => {
            return Err(bad(
                "OTEL_TRACES_SAMPLER",
                format!("{other:?} is not supported"),
            ));
        }
    };
    Ok(Some(OtelConfig {
        traces_endpoint: endpoint,
        service_name,
        resource_attributes,
        sampler,
        certificate,
        headers,
    }))
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
        let o = c.otel.unwrap();
        assert_eq!(
            o.traces_endpoint,
            "https://collector.example:4318/v1/traces"
        );
        assert_eq!(
            o.headers,
            vec![
                ("authorization".to_owned(), "Bearer t0k".to_owned()),
                ("x-scope-orgid".to_owned(), "team-a".to_owned())
            ]
        );
        assert!(o.certificate.is_none());
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
        let o = c.otel.unwrap();
        assert_eq!(o.traces_endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(o.service_name, "outrigger-proxy");
        assert_eq!(o.resource_attributes.len(), 2);
        assert_eq!(o.sampler, Sampler::ParentRatio(0.5));
    }
}
