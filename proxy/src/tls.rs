//! Inbound TLS: rustls (ring provider) with TLS 1.2/1.3 only, ALPN `h2`/`http/1.1`, optional
//! client-certificate verification, and certificate hot reload.
//!
//! The certificate lives behind a [`CertStore`] that rustls asks on every handshake, so swapping
//! it affects only new handshakes: established connections keep their session and are never
//! dropped. A watcher polls the files (cert-manager replaces Secret files through a symlink swap,
//! which inotify on the file path misses) and reloads when their identity or size changes; a
//! half-written or invalid pair is rejected and the old certificate stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// rustls rejected the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// Client CA verifier could not be built.
    #[error("client CA: {0}")]
    Verifier(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Load a certificate chain and key into a signing-ready [`CertifiedKey`].
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, e))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no certificate found"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
    let ck = CertifiedKey::from_der(chain, key_der, &provider())
        .map_err(|e| pem_err(key, format!("key does not match certificate: {e}")))?;
    Ok(ck)
}

/// The current certificate, swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    fn set(&self, ck: CertifiedKey) {
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(ck);
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Build the server config and the store backing it.
pub fn server_config(cfg: &TlsConfig) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let ck = load_certified_key(&cfg.cert, &cfg.key)?;
    let store = Arc::new(CertStore {
        current: RwLock::new(Arc::new(ck)),
    });
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| pem_err(ca, e))? {
                roots
                    .add(c.map_err(|e| pem_err(ca, e))?)
                    .map_err(|e| pem_err(ca, e))?;
            }
            if roots.is_empty() {
                return Err(pem_err(ca, "no CA certificate found"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), store))
}

/// File identity used to notice changes (modification time, size, inode through symlinks).
fn fingerprint(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Poll the cert and key files every `interval`; reload the store when either changes.
pub async fn watch(
    cfg: TlsConfig,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let mut last = (fingerprint(&cfg.cert), fingerprint(&cfg.key));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = (fingerprint(&cfg.cert), fingerprint(&cfg.key));
        if now == last {
            continue;
        }
        match load_certified_key(&cfg.cert, &cfg.key) {
            Ok(ck) => {
                store.set(ck);
                last = now;
                metrics
                    .tls_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                tracing::info!(cert = %cfg.cert.display(), "reloaded TLS certificate");
            }
            Err(e) => {
                // Leave `last` alone so the next tick tries again (the writer may be mid-way).
                metrics
                    .tls_reloads
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                tracing::warn!(error = %e, "TLS certificate reload failed; keeping the old one");
            }
        }
    }
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
