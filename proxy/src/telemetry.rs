//! Per-request telemetry: golden metrics on completion, the JSON access log on stdout and the OTLP
//! server span, and the end of the request reported to its connection (`conn::Active`). Nothing
//! here allocates unless the access log or tracing is switched on.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tokio::time::Instant;

use crate::config::OtelConfig;
use crate::conn::Active;
use crate::metrics::{Method, Metrics};

/// Per export request (OTLP's default `OTEL_EXPORTER_OTLP_TIMEOUT`, which the exporter reads but
/// leaves to the HTTP client).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "outrigger-proxy";

/// OTLP tracing state (present only when an endpoint is configured).
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: Tracer,
    propagator: TraceContextPropagator,
}

/// The resource from the SDK's environment detectors, with our service name where the SDK would
/// put its `unknown_service` placeholder.
fn resource() -> Resource {
    use opentelemetry_sdk::resource::{
        EnvResourceDetector, ResourceDetector, SdkProvidedResourceDetector,
    };
    let detectors: [Box<dyn ResourceDetector>; 2] = [
        Box::new(SdkProvidedResourceDetector),
        Box::new(EnvResourceDetector::new()),
    ];
    let detected = Resource::builder_empty().with_detectors(&detectors).build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| name.as_str() != "unknown_service");
    if named {
        return detected;
    }
    Resource::builder_empty()
        .with_attributes(
            detected
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(DEFAULT_SERVICE_NAME)
        .build()
}

impl Tracing {
    /// Build the OTLP/HTTP (protobuf) exporter and a batching tracer provider; the endpoint,
    /// headers, sampler and resource come from the `OTEL_*` variables, read by the SDK and the
    /// exporter (checked beforehand by [`crate::otel::from_env`]).
    pub fn new(cfg: &OtelConfig) -> anyhow::Result<Self> {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
        // Our own client, so an https:// collector can be verified against
        // OTEL_EXPORTER_OTLP_CERTIFICATE (system roots otherwise); built outside the runtime
        // because the blocking client runs its own.
        let mut client = reqwest::blocking::Client::builder().timeout(EXPORT_TIMEOUT);
        if let Some(path) = &cfg.certificate {
            let pem = std::fs::read(path)?;
            for ca in reqwest::Certificate::from_pem_bundle(&pem)? {
                client = client.add_root_certificate(ca);
            }
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client.build()?)
            .with_protocol(Protocol::HttpBinary)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "outrigger-proxy");
        Ok(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Start a server span continuing the client's `traceparent`/`tracestate`, and write the
    /// new context into `upstream` headers for the app.
    pub fn start(
        &self,
        method: &http::Method,
        path: &str,
        incoming: &HeaderMap,
        upstream: &mut HeaderMap,
        protocol: &'static str,
    ) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(incoming));
        let span = self
            .tracer
            .span_builder(method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("url.path", path.to_owned()),
                KeyValue::new("network.protocol.version", protocol),
            ])
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        self.propagator
            .inject_context(&cx, &mut HeaderInjector(upstream));
        cx
    }

    /// Flush and stop the exporter (blocking; call off the async workers).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing traces failed");
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Trace id from a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id_from_headers(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = v.split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

/// What the access log needs beyond the metrics (only built when the log is on).
#[derive(Debug)]
pub struct LogFields {
    /// Request method.
    pub method: http::Method,
    /// Request path (no query: queries often carry secrets).
    pub path: String,
    /// Request protocol.
    pub protocol: &'static str,
    /// Client address.
    pub client: SocketAddr,
    /// Trace id, when known.
    pub trace_id: Option<String>,
    /// Request body bytes, counted as they stream.
    pub bytes_in: Arc<AtomicU64>,
}

/// Everything recorded when a response completes (body end, error or drop).
#[derive(Debug)]
pub struct Completion {
    /// Metrics to record into.
    pub metrics: Arc<Metrics>,
    /// The request on its connection, ended here.
    pub active: Active,
    /// When the request arrived.
    pub start: Instant,
    /// Normalised method.
    pub method: Method,
    /// Response status.
    pub status: u16,
    /// Time until the app's response headers, when the app answered (measured only for the
    /// access log).
    pub upstream: Option<std::time::Duration>,
    /// Retries made.
    pub retries: u32,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// The response body failed mid-stream.
    pub error: bool,
    /// Access-log fields when the log is on.
    pub log: Option<Box<LogFields>>,
    /// Server span when tracing is on.
    pub span: Option<Context>,
}

impl Completion {
    /// Count response body bytes.
    pub fn add_bytes_out(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// The response body failed.
    pub fn mark_error(&mut self) {
        self.error = true;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // One clock read for the metrics, the access log and the connection's idle mark.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.start);
        let m = &self.metrics;
        m.request_duration.observe(elapsed.as_secs_f64());
        m.count_request(self.method, self.status);
        m.response_bytes.inc_by(self.bytes_out);
        m.in_flight.dec();
        self.active.end(now);

        if let Some(cx) = self.span.take() {
            let span = cx.span();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(self.status),
            ));
            if self.status >= 500 || self.error {
                span.set_status(Status::error(if self.error {
                    "response body failed"
                } else {
                    "server error"
                }));
            }
            if self.retries > 0 {
                span.set_attribute(KeyValue::new(
                    "http.request.resend_count",
                    i64::from(self.retries),
                ));
            }
            span.end();
        }

        if let Some(log) = self.log.take() {
            write_access_log(self, &log, elapsed);
        }
    }
}

fn write_access_log(c: &Completion, log: &LogFields, elapsed: std::time::Duration) {
    let line = serde_json::json!({
        "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "method": log.method.as_str(),
        "path": log.path,
        "protocol": log.protocol,
        "status": c.status,
        "duration_ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "upstream_ms": c.upstream.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        "bytes_in": log.bytes_in.load(Ordering::Relaxed),
        "bytes_out": c.bytes_out,
        "retries": c.retries,
        "trace_id": log.trace_id,
        "client": log.client.ip().to_string(),
        "error": c.error,
    });
    let mut buf = Vec::with_capacity(256);
    if serde_json::to_writer(&mut buf, &line).is_ok() {
        buf.push(b'\n');
        // One write per line keeps lines whole when several workers log at once.
        let _ = std::io::stdout().lock().write_all(&buf);
    }
}
