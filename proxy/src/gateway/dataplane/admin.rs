//! The gateway's admin port (the shared `outrigger-daemon` server): `/live`, `/ready` (a table
//! was loaded and the gateway is not draining), `/metrics` (the sidecar's golden metrics and the
//! `outrigger_gateway_*` families).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outrigger_daemon::admin::Admin;
use tokio::net::TcpListener;

use super::router::State;
use crate::shared::Shared;

struct GatewayAdmin {
    shared: Arc<Shared>,
    state: Arc<State>,
    loaded: Arc<AtomicBool>,
}

impl Admin for GatewayAdmin {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        if self.shared.is_draining() {
            return Err("draining\n");
        }
        if !self.loaded.load(Ordering::Acquire) {
            return Err("no routing table yet\n");
        }
        Ok("ready\n")
    }

    fn metrics(&self) -> String {
        self.state.metrics.refresh_endpoints(&self.state.balancer);
        self.shared.metrics.encode()
    }
}

/// Serve the admin endpoints until the process exits.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    state: Arc<State>,
    loaded: Arc<AtomicBool>,
) {
    let admin = GatewayAdmin {
        shared,
        state,
        loaded,
    };
    outrigger_daemon::admin::serve(listener, Arc::new(admin)).await;
}
