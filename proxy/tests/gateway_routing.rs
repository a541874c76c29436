//! Gateway routing over real sockets: the basic path, match precedence across routes, hosts and
//! wildcard listeners, every filter, weights, and the 404/500/503/504/400 answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::gateway::{Gateway, TO_SVC, backend, simple};
use common::{App, free_port, get, h1_client, send};

fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_route_forwards_to_the_service_keeping_host_and_adding_forwarded_headers() {
    let app = App::start().await;
    let port = free_port();
    let gw = Gateway::start(&simple(port, TO_SVC, &backend(&[app.addr])), &[]).await;
    let client = h1_client();
    let (status, _, body) = send(
        &client,
        req(
            "GET",
            &format!("http://127.0.0.1:{port}/headers"),
            &[("host", "Shop.Example.com")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body).to_lowercase();
    assert!(body.contains("host: shop.example.com"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    assert!(body.contains("x-forwarded-proto: http"), "{body}");
    let m = gw.metrics().await;
    assert!(
        m.contains(
            r#"outrigger_gateway_requests_total{route="ns/r",backend="ns/svc:80",code="200"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains("outrigger_gateway_request_duration_seconds_count{route=\"ns/r\"} 1"),
        "{m}"
    );
    assert!(m.contains("outrigger_gateway_table_updates_total 1"), "{m}");
    assert!(
        m.contains(r#"outrigger_gateway_backend_endpoints{backend="ns/svc:80",state="ready"} 1"#),
        "{m}"
    );
    assert!(m.contains("outrigger_proxy_requests_total"), "{m}");
}

/// A rule that answers with `x-rule: <name>` (whatever the app answers).
fn tagged(name: &str, matches: &str) -> String {
    format!(
        r#"{{"route":"ns/{name}",{matches}"backends":[{{"service":"ns/svc:80"}}],
            "filters":[{{"type":"ResponseHeaderModifier","set":[{{"name":"x-rule","value":"{name}"}}]}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_is_exact_then_longest_prefix_then_method_then_headers_then_query() {
    let app = App::start().await;
    let port = free_port();
    // Listed in the reverse of their precedence: the order must come from the matches.
    let rules = [
        tagged("short", r#""path":{"type":"PathPrefix","value":"/a"},"#),
        tagged(
            "query",
            r#""path":{"type":"PathPrefix","value":"/a/b"},"queryParams":[{"name":"q","value":"1"}],"#,
        ),
        tagged(
            "header",
            r#""path":{"type":"PathPrefix","value":"/a/b"},"headers":[{"name":"X-H","value":"1"}],"#,
        ),
        tagged(
            "method",
            r#""path":{"type":"PathPrefix","value":"/a/b"},"method":"POST","#,
        ),
        tagged("long", r#""path":{"type":"PathPrefix","value":"/a/b"},"#),
        tagged("exact", r#""path":{"type":"Exact","value":"/a/b"},"#),
    ];
    let json = simple(
        port,
        &format!("[{}]", rules.join(",")),
        &backend(&[app.addr]),
    );
    let _gw = Gateway::start(&json, &[]).await;
    let client = h1_client();
    let base = format!("http://127.0.0.1:{port}");
    for (method, path, headers, want) in [
        ("GET", "/a/b", &[][..], Some("exact")),
        ("GET", "/a/b/c", &[][..], Some("long")),
        ("POST", "/a/b/c", &[][..], Some("method")),
        ("GET", "/a/b/c", &[("x-h", "1")][..], Some("header")),
        ("GET", "/a/b/c?q=1", &[][..], Some("query")),
        ("POST", "/a/b/c?q=1", &[("x-h", "1")][..], Some("method")),
        ("GET", "/a/b/c?q=1", &[("x-h", "1")][..], Some("header")),
        ("GET", "/a/x", &[][..], Some("short")),
        ("GET", "/abc", &[][..], None),
    ] {
        let (status, h, _) = send(&client, req(method, &format!("{base}{path}"), headers))
            .await
            .unwrap();
        match want {
            Some(rule) => assert_eq!(
                h.get("x-rule").map(|v| v.to_str().unwrap()),
                Some(rule),
                "{method} {path} {headers:?}"
            ),
            None => assert_eq!(status, 404, "{method} {path}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_specific_listener_and_virtual_host_serve_a_host() {
    let app = App::start().await;
    let port = free_port();
    let vhost = |name: &str, host: Option<&str>| {
        let host = host.map_or("null".to_owned(), |h| format!("\"{h}\""));
        format!(r#"{{"hostname":{host},"rules":[{}]}}"#, tagged(name, ""))
    };
    let json = format!(
        r#"{{"ports":[{{"port":{port},"listeners":[
            {{"name":"any","hostname":null,"virtualHosts":[{},{}]}},
            {{"name":"wild","hostname":"*.example.com","virtualHosts":[{}]}},
            {{"name":"deeper","hostname":"*.b.example.com","virtualHosts":[{}]}},
            {{"name":"exact","hostname":"a.example.com","virtualHosts":[{}]}}
        ]}}],"backends":{}}}"#,
        vhost("any-foo", Some("foo.test")),
        vhost("any", None),
        vhost("wild", None),
        vhost("deeper", None),
        vhost("exact", None),
        backend(&[app.addr])
    );
    let _gw = Gateway::start(&json, &[]).await;
    let client = h1_client();
    for (host, want) in [
        ("a.example.com", "exact"),
        ("A.EXAMPLE.COM:8080", "exact"),
        ("b.example.com", "wild"),
        ("x.y.example.com", "wild"),
        ("x.b.example.com", "deeper"),
        ("example.com", "any"),
        ("foo.test", "any-foo"),
        ("other.test", "any"),
    ] {
        let (_, h, _) = send(
            &client,
            req(
                "GET",
                &format!("http://127.0.0.1:{port}/hello"),
                &[("host", host)],
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            h.get("x-rule").map(|v| v.to_str().unwrap()),
            Some(want),
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_modify_headers_redirect_and_rewrite() {
    let app = App::start().await;
    let port = free_port();
    let rules = r#"[
      {"route":"ns/headers","path":{"type":"PathPrefix","value":"/headers"},
       "filters":[
         {"type":"RequestHeaderModifier","set":[{"name":"x-set","value":"s"}],"add":[{"name":"x-add","value":"b"}],"remove":["x-drop"]},
         {"type":"ResponseHeaderModifier","set":[{"name":"x-resp","value":"r"},{"name":"x-gone","value":"1"}],"add":[{"name":"x-resp-add","value":"2"}],"remove":["x-gone"]}],
       "backends":[{"service":"ns/svc:80","filters":[{"type":"RequestHeaderModifier","set":[{"name":"x-backend","value":"yes"}]}]}]},
      {"route":"ns/redirect","path":{"type":"PathPrefix","value":"/old"},
       "filters":[{"type":"RequestRedirect","scheme":"https","statusCode":301,"path":{"type":"ReplacePrefixMatch","value":"/new"}}]},
      {"route":"ns/redirect-port","path":{"type":"Exact","value":"/port"},
       "filters":[{"type":"RequestRedirect","hostname":"other.test","port":8443}]},
      {"route":"ns/redirect-here","path":{"type":"Exact","value":"/here"},
       "filters":[{"type":"RequestRedirect","path":{"type":"ReplaceFullPath","value":"/there"}}]},
      {"route":"ns/rewrite-prefix","path":{"type":"PathPrefix","value":"/api"},
       "filters":[{"type":"URLRewrite","path":{"type":"ReplacePrefixMatch","value":"/"}}],
       "backends":[{"service":"ns/svc:80"}]},
      {"route":"ns/rewrite-full","path":{"type":"Exact","value":"/full"},
       "filters":[{"type":"URLRewrite","hostname":"rewritten.test","path":{"type":"ReplaceFullPath","value":"/headers"}}],
       "backends":[{"service":"ns/svc:80"}]}
    ]"#;
    let json = simple(port, rules, &backend(&[app.addr]));
    let gw = Gateway::start(&json, &[]).await;
    let client = h1_client();
    let base = format!("http://127.0.0.1:{port}");

    let (status, h, body) = send(
        &client,
        req(
            "GET",
            &format!("{base}/headers"),
            &[("x-drop", "1"), ("x-add", "a"), ("x-set", "old")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("x-set: s") && !body.contains("x-set: old"),
        "{body}"
    );
    assert!(
        body.contains("x-add: a") && body.contains("x-add: b"),
        "{body}"
    );
    assert!(!body.contains("x-drop"), "{body}");
    assert!(body.contains("x-backend: yes"), "{body}");
    assert_eq!(h["x-resp"], "r");
    assert_eq!(h["x-resp-add"], "2");
    assert!(!h.contains_key("x-gone"));

    let (status, h, _) = get(&client, &format!("{base}/old/page?x=1")).await.unwrap();
    assert_eq!(status, 301);
    // The client's Host (127.0.0.1:port) without its port; https's default port is left out.
    assert_eq!(h["location"], "https://127.0.0.1/new/page?x=1");
    let (status, h, _) = get(&client, &format!("{base}/port")).await.unwrap();
    assert_eq!(status, 302);
    assert_eq!(h["location"], "http://other.test:8443/port");
    let (_, h, _) = get(&client, &format!("{base}/here")).await.unwrap();
    assert_eq!(h["location"], format!("http://127.0.0.1:{port}/there"));
    // Behind a Gateway's Service the bound port is an internal one: a redirect without a port
    // keeps the Gateway listener's port, the one the client connected to.
    let mut behind = (*common::gateway::table(&json)).clone();
    behind.ports[0].listener_port = 8080;
    gw.tables.send_replace(Arc::new(behind));
    let (_, h, _) = get(&client, &format!("{base}/here")).await.unwrap();
    assert_eq!(h["location"], "http://127.0.0.1:8080/there");
    assert_eq!(app.state.hits("/old/page") + app.state.hits("/port"), 0);

    let (status, _, body) = get(&client, &format!("{base}/api/hello")).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
    let (status, _, body) = get(&client, &format!("{base}/full")).await.unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("host: rewritten.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_requests_between_backends() {
    let (a, b) = (App::start().await, App::start().await);
    let port = free_port();
    let rules = r#"[{"route":"ns/split","backends":[{"service":"ns/a:80","weight":3},{"service":"ns/b:80","weight":1},{"service":"ns/never:80","weight":0}]}]"#;
    let backends = format!(
        r#"[{{"service":"ns/a:80","endpoints":[{{"address":"{}"}}]}},{{"service":"ns/b:80","endpoints":[{{"address":"{}"}}]}}]"#,
        a.addr, b.addr
    );
    let _gw = Gateway::start(&simple(port, rules, &backends), &[]).await;
    let client = h1_client();
    for _ in 0..1000 {
        let (status, _, _) = get(&client, &format!("http://127.0.0.1:{port}/hello"))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let (ha, hb) = (a.state.hits("/hello"), b.state.hits("/hello"));
    assert_eq!(ha + hb, 1000);
    // Expected 750; the bounds are > 10 standard deviations (13.7) wide.
    assert!((600..=900).contains(&ha), "a got {ha}, b got {hb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_answer_404_500_503_504_and_400() {
    let app = App::start().await;
    let port = free_port();
    let rules = r#"[
      {"route":"ns/invalid","path":{"type":"PathPrefix","value":"/invalid"},"backends":[{}]},
      {"route":"ns/none","path":{"type":"PathPrefix","value":"/none"},"backends":[]},
      {"route":"ns/missing","path":{"type":"PathPrefix","value":"/missing"},"backends":[{"service":"ns/missing:80"}]},
      {"route":"ns/unready","path":{"type":"PathPrefix","value":"/unready"},"backends":[{"service":"ns/unready:80"}]},
      {"route":"ns/slow","path":{"type":"PathPrefix","value":"/slow"},"timeouts":{"request":"300ms"},"backends":[{"service":"ns/svc:80"}]},
      {"route":"ns/attempt","path":{"type":"PathPrefix","value":"/consume"},"timeouts":{"backendRequest":"200ms"},"backends":[{"service":"ns/svc:80"}]}
    ]"#;
    let backends = format!(
        r#"[{{"service":"ns/svc:80","endpoints":[{{"address":"{}"}}]}},
            {{"service":"ns/unready:80","endpoints":[{{"address":"{}","ready":false}},{{"address":"{}","terminating":true}}]}}]"#,
        app.addr, app.addr, app.addr
    );
    let gw = Gateway::start(&simple(port, rules, &backends), &[]).await;
    let client = h1_client();
    let base = format!("http://127.0.0.1:{port}");
    for (path, want) in [
        ("/nothing", 404),
        ("/invalid", 500),
        ("/none", 500),
        ("/missing", 503),
        ("/unready", 503),
        ("/slow/3000", 504),
    ] {
        let (status, _, _) = get(&client, &format!("{base}{path}")).await.unwrap();
        assert_eq!(status.as_u16(), want, "{path}");
    }
    assert_eq!(app.state.hits("/unready"), 0);
    // backendRequest bounds each attempt: a POST (not retried) whose body never ends, so the
    // app never answers.
    let started = std::time::Instant::now();
    let raw = common::raw(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"POST /consume/200 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nstart",
        Duration::from_secs(3),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 504"), "{raw}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let raw = common::raw(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"NOT HTTP AT ALL\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let m = gw.metrics().await;
    for needle in [
        r#"outrigger_gateway_requests_total{route="",backend="",code="404"} 1"#,
        r#"outrigger_gateway_requests_total{route="ns/invalid",backend="invalid",code="500"} 1"#,
        r#"outrigger_gateway_requests_total{route="ns/unready",backend="ns/unready:80",code="503"} 1"#,
        r#"outrigger_gateway_requests_total{route="ns/slow",backend="ns/svc:80",code="504"} 1"#,
        r#"outrigger_gateway_backend_endpoints{backend="ns/unready:80",state="not_ready"} 1"#,
        r#"outrigger_gateway_backend_endpoints{backend="ns/unready:80",state="terminating"} 1"#,
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}
