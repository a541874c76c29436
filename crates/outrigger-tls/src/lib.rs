//! Server-side TLS for the Outrigger daemons: rustls (ring provider), TLS 1.2/1.3 only, ALPN
//! `h2`/`http/1.1`, optional client-certificate verification, and certificate hot reload.
//!
//! The certificate lives behind a [`CertStore`] that rustls asks on every handshake, so swapping
//! it affects only new handshakes: established connections keep their session and are never
//! dropped. [`watch`] polls the files by identity (mtime, size, inode) because cert-manager
//! replaces Secret files through a symlink swap, which inotify on the file path misses; a
//! half-written or mismatched pair is rejected and the old certificate stays in use; every
//! attempt is reported, and [`count_in`] counts them in the daemon's reload counter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

/// Load a certificate chain and its key into a signing-ready [`CertifiedKey`].
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
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

/// The current certificate, swapped atomically on reload and asked on every handshake.
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

/// Build a server config (TLS 1.3 + 1.2, ALPN h2 then http/1.1) and the store behind it. With
/// `client_ca`, clients must present a certificate signed by one of its CAs (mTLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let store = Arc::new(CertStore {
        current: RwLock::new(Arc::new(load_certified_key(cert, key)?)),
    });
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
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

/// A server config (TLS 1.2/1.3, ALPN `h2` then `http/1.1`, no client certificates) whose
/// certificate `resolver` picks per handshake: the gateway's choice by SNI.
pub fn resolver_config(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// File identity used to notice changes (modification time, size, inode through symlinks).
fn fingerprint(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Outcome of one reload attempt, for the caller's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// A changed, valid pair is now served.
    Success,
    /// A changed pair failed to load; the previous certificate stays in use.
    Error,
}

impl Reload {
    /// The `result` label value the daemons' reload counters use.
    pub fn label(self) -> &'static str {
        match self {
            Reload::Success => "success",
            Reload::Error => "error",
        }
    }
}

/// A [`watch`] callback counting every attempt in `reloads`, under the label set `label` makes of
/// the attempt's [`Reload::label`]; the daemons' `tls_cert_reloads_total{result}` is one.
pub fn count_in<L>(
    reloads: Family<L, Counter>,
    label: fn(&'static str) -> L,
) -> impl FnMut(Reload) + Send
where
    L: Clone + std::hash::Hash + Eq + Send + Sync + 'static,
{
    move |outcome| {
        reloads.get_or_create(&label(outcome.label())).inc();
    }
}

/// Poll the files every `interval` and swap in a changed, valid pair; `on_reload` hears every
/// attempt. Runs until the task is dropped.
pub async fn watch(
    cert: PathBuf,
    key: PathBuf,
    store: Arc<CertStore>,
    interval: Duration,
    mut on_reload: impl FnMut(Reload) + Send,
) {
    let mut last = (fingerprint(&cert), fingerprint(&key));
    // A pair that failed to load is retried only once it changes again (no log flood); `last`
    // stays put so a completed rotation is still picked up on a later tick.
    let mut failed = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = (fingerprint(&cert), fingerprint(&key));
        if now == last || failed.as_ref() == Some(&now) {
            continue;
        }
        match load_certified_key(&cert, &key) {
            Ok(ck) => {
                store.set(ck);
                last = now;
                failed = None;
                on_reload(Reload::Success);
                tracing::info!(cert = %cert.display(), "reloaded TLS certificate");
            }
            Err(e) => {
                failed = Some(now);
                on_reload(Reload::Error);
                tracing::warn!(error = %e, "certificate reload failed; keeping the previous one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_in_counts_each_result_under_its_label() {
        let reloads = Family::<(&'static str, &'static str), Counter>::default();
        let mut count = count_in(reloads.clone(), |result| ("result", result));
        count(Reload::Success);
        count(Reload::Error);
        count(Reload::Success);
        assert_eq!(reloads.get_or_create(&("result", "success")).get(), 2);
        assert_eq!(reloads.get_or_create(&("result", "error")).get(), 1);
    }
}
