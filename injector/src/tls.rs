//! Webhook TLS: the shared reloading server config (`outrigger-tls`: TLS 1.2/1.3, ALPN
//! h2/http1.1, certificate hot reload) wired to the injector's metrics. cert-manager rotates the
//! Secret behind the mounted files; new handshakes get the new pair, open connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

pub use outrigger_tls::{CertStore, TlsError};

use crate::metrics::{Metrics, ResultLabels};

/// Build the server config and the store behind it.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    outrigger_tls::server_config(cert, key, None)
}

/// Poll the files every `interval` and swap in a changed, valid pair.
pub async fn watch(
    cert: PathBuf,
    key: PathBuf,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let count = outrigger_tls::count_in(metrics.tls_reloads.clone(), |result| ResultLabels {
        result,
    });
    outrigger_tls::watch(cert, key, store, interval, count).await;
}
