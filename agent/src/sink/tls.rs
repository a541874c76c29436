//! TLS client settings for the sinks: `https://` sink URLs are verified against the system trust
//! store plus an optional extra CA bundle (private CAs), optionally presenting a client
//! certificate (mTLS). Built once, at configuration time, so a bad file is a usage error
//! (exit 64) before anything starts, not a send error later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Files given on the command line.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Why the TLS settings cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--{flag} {path}: {why}")]
    File {
        flag: &'static str,
        path: String,
        why: String,
    },
    #[error("--sink-client-cert and --sink-client-key must be given together")]
    HalfClientAuth,
    #[error("--sink-client-cert/--sink-client-key: {0}")]
    ClientAuth(rustls::Error),
    #[error("no trusted CA: the system trust store is empty and no --sink-ca-file was given")]
    NoRoots,
    #[error("TLS setup: {0}")]
    Rustls(rustls::Error),
}

fn file_err(flag: &'static str, path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        flag,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Reads every certificate in a PEM file; an unreadable file or one without certificates is an
/// error.
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first so a missing file says "No such file" rather than a PEM parse error.
    let pem = std::fs::read(path).map_err(|e| file_err(flag, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(flag, path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(flag, path, "no PEM certificate in file"));
    }
    Ok(certs)
}

fn read_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_err(flag, path, e))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| file_err(flag, path, format!("no usable PEM private key: {e}")))
}

impl TlsFiles {
    /// Whether any TLS file was given (the settings are then built and checked even when no
    /// sink URL is `https://`, so a typo is not silently ignored).
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }
}

/// Builds the client configuration: system roots plus `ca_file`, optional client auth. With `https` false and no file given (every
/// sink is `http://`) the configuration is never used for a handshake, so the system trust store
/// is not read and an empty one is fine.
pub fn client_config(files: &TlsFiles, https: bool) -> Result<Arc<ClientConfig>, TlsError> {
    let needed = https || files.any();
    let mut roots = RootCertStore::empty();
    if needed {
        // Unreadable system certificates are skipped: the extra CA file may be all that is needed.
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "system trust store: skipped");
        }
        let (_, bad) = roots.add_parsable_certificates(native.certs);
        if bad > 0 {
            tracing::debug!(
                count = bad,
                "system trust store: unparsable certificates skipped"
            );
        }
    }
    if let Some(path) = &files.ca_file {
        for c in read_certs("sink-ca-file", path)? {
            roots
                .add(c)
                .map_err(|e| file_err("sink-ca-file", path, format!("not a usable CA: {e}")))?;
        }
    }
    if needed && roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    let cfg = match (&files.client_cert, &files.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("sink-client-cert", cert)?;
            let key = read_key("sink-client-key", key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::ClientAuth)?
        }
        _ => return Err(TlsError::HalfClientAuth),
    };
    // ALPN is left empty here: the hyper-rustls connector (built with HTTP/1 only) sets it to
    // http/1.1 and refuses a pre-set list.
    Ok(Arc::new(cfg))
}
