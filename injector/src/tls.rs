//! Webhook TLS: rustls (ring), TLS 1.2/1.3, ALPN h2/http1.1, certificate hot reload.
//!
//! cert-manager rotates the Secret behind the mounted files (a symlink swap), so the files are
//! polled by identity (mtime, size, inode) and the new pair is swapped in for new handshakes
//! only. A half-written or mismatched pair is rejected and the old certificate stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::{Metrics, ResultLabels};

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// rustls rejected the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
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

/// Load a certificate chain and its key.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, e))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no certificate found"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map_err(|e| pem_err(key, format!("key does not match certificate: {e}")))
}

/// The current certificate, asked on every handshake.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Build the server config and the store behind it.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let store = Arc::new(CertStore {
        current: RwLock::new(Arc::new(load(cert, key)?)),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), store))
}

fn fingerprint(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Poll the files every `interval` and swap in a changed, valid pair.
pub async fn watch(
    cert: PathBuf,
    key: PathBuf,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let mut last = (fingerprint(&cert), fingerprint(&key));
    // A pair that failed to load is retried only once it changes again (no log flood).
    let mut failed = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = (fingerprint(&cert), fingerprint(&key));
        if now == last || failed.as_ref() == Some(&now) {
            continue;
        }
        match load(&cert, &key) {
            Ok(ck) => {
                if let Ok(mut cur) = store.current.write() {
                    *cur = Arc::new(ck);
                }
                last = now;
                failed = None;
                metrics
                    .tls_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                tracing::info!(cert = %cert.display(), "serving certificate reloaded");
            }
            Err(e) => {
                // Keep `last` so a completed rotation is picked up on a later tick.
                failed = Some(now);
                metrics
                    .tls_reloads
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                tracing::warn!(error = %e, "certificate reload failed; keeping the previous one");
            }
        }
    }
}
