//! Admin listener (the shared `outrigger-daemon` server): `GET /live` (the proxy itself),
//! `GET /ready` (not draining and the app accepts connections), `GET /metrics`, and `GET /drain`.
//! It stays up through the drain so probes and scrapes see the draining state until the process
//! exits.
//!
//! `GET /drain` starts the same drain as SIGTERM. The app container's preStop hook calls it: the
//! kubelet runs a pod's main containers' preStop hooks first and sends a native sidecar its
//! SIGTERM only after the app exited, so without it the proxy would learn of the termination
//! only when the app is already gone. Every pod can reach this port, so an open `/drain` would
//! let any pod take any other out of its Service: it needs the pod's own token
//! (`--drain-token`) in `X-Outrigger-Drain-Token`, compared in constant time; a wrong or missing
//! token gets 403, and without a configured token the path does not exist (404). Each answer is
//! counted in `outrigger_proxy_drain_requests_total{result}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use outrigger_daemon::admin::{Admin, text};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;

use crate::drain;
use crate::metrics::ResultLabels;
use crate::shared::Shared;

/// Header that carries the drain token.
pub const DRAIN_TOKEN_HEADER: &str = "x-outrigger-drain-token";

struct ProxyAdmin {
    shared: Arc<Shared>,
    drain: drain::Request,
}

impl ProxyAdmin {
    fn count(&self, result: &'static str) {
        self.shared
            .metrics
            .drain_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    async fn drain(&self, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let Some(token) = &self.shared.config.drain_token else {
            self.count("disabled");
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        if method != Method::GET {
            // HEAD must not change state; it gets what any other unknown method gets.
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let given = headers
            .get(DRAIN_TOKEN_HEADER)
            .map_or(&[][..], http::HeaderValue::as_bytes);
        // Constant time over the token's length, so response timing tells nothing about how
        // many leading bytes matched (the length itself is not secret).
        if !bool::from(given.ct_eq(token.as_bytes())) {
            self.count("forbidden");
            tracing::warn!("GET /drain with a missing or wrong token refused");
            return text(StatusCode::FORBIDDEN, "forbidden\n");
        }
        self.count("accepted");
        if self.drain.request() {
            tracing::info!("GET /drain: draining");
        }
        // Answer once the listener closed (the drain delay is over): the kubelet waits for the
        // preStop hook before it stops the app, so the app keeps serving while the endpoint
        // leaves every node's rules and kept-alive clients move away.
        self.shared.drain.reached(drain::Phase::Closing).await;
        text(StatusCode::OK, "draining\n")
    }
}

impl Admin for ProxyAdmin {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        if self.shared.is_draining() {
            return Err("draining\n");
        }
        let timeout = self
            .shared
            .config
            .connect_timeout
            .min(Duration::from_secs(1));
        let app = tokio::net::TcpStream::connect(self.shared.config.app);
        match tokio::time::timeout(timeout, app).await {
            Ok(Ok(_)) => Ok("ready\n"),
            _ => Err("app not accepting connections\n"),
        }
    }

    fn metrics(&self) -> String {
        self.shared.metrics.encode()
    }

    async fn other(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Full<Bytes>>> {
        match path {
            "/drain" => Some(self.drain(method, headers).await),
            _ => None,
        }
    }
}

/// Serve the admin endpoints until the process exits; `GET /drain` asks `drain` to start the
/// drain.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, drain: drain::Request) {
    outrigger_daemon::admin::serve(listener, Arc::new(ProxyAdmin { shared, drain })).await;
}
