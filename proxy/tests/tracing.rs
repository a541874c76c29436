//! W3C trace context and OTLP export: an in-test OTLP/HTTP receiver decodes the protobuf the
//! proxy sends (opentelemetry-proto types) and checks the server span continues the client's
//! trace, while the app receives the proxy's span as parent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;

use std::convert::Infallible;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{App, Pki, Proxy, h1_client, send};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<(String, Span)>>>;
type Headers = Arc<Mutex<Vec<http::HeaderMap>>>;
/// The string attributes of each exported resource, as `key=value`.
type Resources = Arc<Mutex<Vec<Vec<String>>>>;

/// OTLP/HTTP receiver: decodes every POST /v1/traces body as protobuf.
async fn otlp_receiver() -> (std::net::SocketAddr, Received) {
    let (addr, got, _, _) = otlp_receiver_with(None).await;
    (addr, got)
}

/// The same receiver, over TLS when `tls` is given; also records each request's headers and
/// each resource's attributes.
async fn otlp_receiver_with(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (std::net::SocketAddr, Received, Headers, Resources) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Received = Arc::default();
    let headers: Headers = Arc::default();
    let resources: Resources = Arc::default();
    let (g, h, r) = (got.clone(), headers.clone(), resources.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (g, h, r, tls) = (g.clone(), h.clone(), r.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (g, h, r) = (g.clone(), h.clone(), r.clone());
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        h.lock().unwrap().push(req.headers().clone());
                        let gzip = req
                            .headers()
                            .get("content-encoding")
                            .is_some_and(|v| v == "gzip");
                        let mut body = req.into_body().collect().await.unwrap().to_bytes();
                        if gzip {
                            let mut plain = Vec::new();
                            flate2::read::GzDecoder::new(&body[..])
                                .read_to_end(&mut plain)
                                .unwrap();
                            body = Bytes::from(plain);
                        }
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        for rs in export.resource_spans {
                            r.lock()
                                .unwrap()
                                .push(string_attributes(rs.resource.as_ref()));
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| r.attributes.iter())
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| kv.value.as_ref())
                                .map(|v| format!("{:?}", v.value))
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for span in ss.spans {
                                    g.lock().unwrap().push((service.clone(), span));
                                }
                            }
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    None => http.serve_connection(TokioIo::new(stream), svc).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => http.serve_connection(TokioIo::new(s), svc).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    (addr, got, headers, resources)
}

fn string_attributes(resource: Option<&Resource>) -> Vec<String> {
    resource
        .iter()
        .flat_map(|r| r.attributes.iter())
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(v) => Some(format!("{}={v}", kv.key)),
            _ => None,
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A proxy exporting spans as `otel` says, whose SIGTERM exits at once (flushing the exporter).
async fn traced_proxy(app: &App, otel: &[(&str, &str)]) -> Proxy {
    Proxy::start(
        app.addr,
        &["--drain-delay", "0s", "--drain-timeout", "2s"],
        otel,
    )
    .await
}

/// `GET /hello` as a sampled child of the client span `CLIENT_SPAN` in `trace`.
async fn hello_in_trace(proxy: &Proxy, trace: &str) {
    let req = Request::get(proxy.url("/hello"))
        .header("traceparent", format!("00-{trace}-{CLIENT_SPAN}-01"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.unwrap().0, 200);
}

/// SIGTERM flushes the batch exporter on the way out; the flush completes before the exit.
async fn exit_flushing(proxy: &mut Proxy) {
    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(10)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_continues_the_client_trace_and_is_exported() {
    let (otlp, received) = otlp_receiver().await;
    let app = App::start().await;
    let endpoint = format!("http://{otlp}");
    let mut proxy = traced_proxy(
        &app,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "proxy-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let req = Request::get(proxy.url("/headers"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, _) = send(&h1_client(), req).await.unwrap();
    assert_eq!(status, 200);

    // The app sees the same trace, the proxy's span as parent, and the tracestate.
    let seen = app.state.last_headers.lock().unwrap().clone().unwrap();
    let tp = seen["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts[1], TRACE_ID, "{tp}");
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the app's parent must be the proxy span: {tp}"
    );
    assert_eq!(parts[3], "01");
    assert_eq!(seen["tracestate"], "vendor=abc");

    exit_flushing(&mut proxy).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (service, span) = loop {
        if let Some(s) = received.lock().unwrap().first().cloned() {
            break s;
        }
        assert!(Instant::now() < deadline, "no span exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(service.contains("proxy-under-test"), "{service}");
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), CLIENT_SPAN);
    assert_eq!(hex(&span.span_id), parts[2]);
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(span.name, "GET");
    let status_attr = span
        .attributes
        .iter()
        .find(|kv| kv.key == "http.response.status_code")
        .map(|kv| format!("{:?}", kv.value));
    assert!(status_attr.unwrap().contains("200"));

    // The access log carries the trace id.
    let log: serde_json::Value =
        serde_json::from_str(&proxy.stdout_lines_at_least(1).await[0]).unwrap();
    assert_eq!(log["trace_id"], TRACE_ID);
}

#[tokio::test]
async fn without_otlp_trace_context_passes_through_untouched() {
    let app = App::start().await;
    let proxy = Proxy::start(app.addr, &[], &[]).await;
    let tp = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let req = Request::get(proxy.url("/headers"))
        .header("traceparent", &tp)
        .header("tracestate", "vendor=abc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.unwrap().0, 200);
    let seen = app.state.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(seen["traceparent"], tp.as_str());
    assert_eq!(seen["tracestate"], "vendor=abc");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log: serde_json::Value =
        serde_json::from_str(&proxy.stdout_lines_at_least(1).await[0]).unwrap();
    assert_eq!(log["trace_id"], TRACE_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_https_with_a_custom_ca_and_headers() {
    let pki = Pki::new();
    let (otlp, received, headers, _) = otlp_receiver_with(Some(pki.acceptor("otlp"))).await;
    let app = App::start().await;
    let endpoint = format!("https://{otlp}");
    let ca = pki.path("ca.pem");
    let mut proxy = traced_proxy(
        &app,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().unwrap()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20s3cret,x-scope-orgid=team-a",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    hello_in_trace(&proxy, TRACE_ID).await;
    exit_flushing(&mut proxy).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let span = loop {
        if let Some((_, s)) = received.lock().unwrap().first().cloned() {
            break s;
        }
        assert!(Instant::now() < deadline, "no span exported over https");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    let h = headers.lock().unwrap()[0].clone();
    assert_eq!(h["authorization"], "Bearer s3cret");
    assert_eq!(h["x-scope-orgid"], "team-a");
}

/// The SDK and the exporter read the `OTEL_*` variables themselves: a base URL with a trailing
/// slash still gets `/v1/traces` (the receiver checks the path), header names are lowercased and
/// values percent-decoded, resource attributes are exported beside the default service name, and
/// a trace-id ratio sampler keeps exactly the traces whose id falls under the ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_reads_the_otel_variables() {
    const SAMPLED: &str = "4bf92f3577b34da60000000000000001";
    const DROPPED: &str = "4bf92f3577b34da6ffffffffffffffff";
    let (otlp, received, headers, resources) = otlp_receiver_with(None).await;
    let app = App::start().await;
    let endpoint = format!("http://{otlp}/");
    let mut proxy = traced_proxy(
        &app,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20t0k,x-scope-orgid=team-a",
            ),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=b, c=d"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    )
    .await;
    for trace in [SAMPLED, DROPPED] {
        hello_in_trace(&proxy, trace).await;
    }
    exit_flushing(&mut proxy).await;
    let traces: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| hex(&s.trace_id))
        .collect();
    assert_eq!(traces, [SAMPLED]);
    let h = headers.lock().unwrap()[0].clone();
    assert_eq!(h["authorization"], "Bearer t0k");
    assert_eq!(h["x-scope-orgid"], "team-a");
    assert_eq!(h["content-encoding"], "gzip");
    let attrs = resources.lock().unwrap()[0].clone();
    for want in ["service.name=outrigger-proxy", "a=b", "c=d"] {
        assert!(attrs.iter().any(|a| a == want), "{want} not in {attrs:?}");
    }
}
