//! Admin listener (the shared `outrigger-daemon` server): `GET /live` (the proxy itself),
//! `GET /ready` (not draining and the app accepts connections) and `GET /metrics`. It stays up
//! through the drain so probes and scrapes see the draining state until the process exits.

use std::sync::Arc;
use std::time::Duration;

use outrigger_daemon::admin::Admin;
use tokio::net::TcpListener;

use crate::shared::Shared;

struct ProxyAdmin(Arc<Shared>);

impl Admin for ProxyAdmin {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        if self.0.is_draining() {
            return Err("draining\n");
        }
        let timeout = self.0.config.connect_timeout.min(Duration::from_secs(1));
        let app = tokio::net::TcpStream::connect(self.0.config.app);
        match tokio::time::timeout(timeout, app).await {
            Ok(Ok(_)) => Ok("ready\n"),
            _ => Err("app not accepting connections\n"),
        }
    }

    fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
}

/// Serve the admin endpoints until the process exits.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    outrigger_daemon::admin::serve(listener, Arc::new(ProxyAdmin(shared))).await;
}
