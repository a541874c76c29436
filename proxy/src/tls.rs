//! Inbound TLS for the proxy: the shared reloading server config (`outrigger-tls`: TLS 1.2/1.3,
//! ALPN `h2`/`http/1.1`, optional client-certificate verification, hot reload) wired to the
//! proxy's configuration and metrics, plus the classification of failed handshakes.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

pub use outrigger_tls::{CertStore, TlsError};

use crate::config::TlsConfig;
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};

/// Build the server config and the store backing it.
pub fn server_config(cfg: &TlsConfig) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    outrigger_tls::server_config(&cfg.cert, &cfg.key, cfg.client_ca.as_deref())
}

/// Poll the cert and key files every `interval`; reload the store when either changes.
pub async fn watch(
    cfg: TlsConfig,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let count = outrigger_tls::count_in(metrics.tls_reloads.clone(), |result| ResultLabels {
        result,
    });
    outrigger_tls::watch(cfg.cert, cfg.key, store, interval, count).await;
}

/// Classify a failed handshake for `outrigger_proxy_tls_handshake_errors_total{reason}`.
pub fn handshake_reason(e: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) {
        return match inner {
            E::NoCertificatesPresented => "no_client_cert",
            E::InvalidCertificate(_) => "bad_certificate",
            E::PeerIncompatible(_) => "incompatible",
            E::NoApplicationProtocol => "no_alpn",
            E::AlertReceived(_) => "alert_received",
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => "malformed",
            _ => "other",
        };
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "eof",
        std::io::ErrorKind::TimedOut => "timeout",
        std::io::ErrorKind::InvalidData => "malformed",
        _ => "io",
    }
}

/// Count a failed handshake.
pub fn count_handshake_error(metrics: &Metrics, reason: &'static str) {
    metrics
        .tls_handshake_errors
        .get_or_create(&ReasonLabels { reason })
        .inc();
}
