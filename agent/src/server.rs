//! The agent's admin listener on `--metrics`: `outrigger-daemon`'s `/live`, `/ready` (initial
//! scan done, sinks running) and `/metrics` (agent and node metrics, OpenMetrics or classic text).

use std::sync::Arc;

use outrigger_daemon::admin::Admin;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

struct AgentAdmin(Arc<Metrics>);

impl Admin for AgentAdmin {
    async fn ready(&self) -> Result<&'static str, &'static str> {
        if self.0.is_ready() {
            Ok("ready\n")
        } else {
            Err("starting\n")
        }
    }

    fn metrics(&self) -> String {
        self.0.encode()
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    outrigger_daemon::admin::serve(listener, Arc::new(AgentAdmin(metrics))).await;
}
