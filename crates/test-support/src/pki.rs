//! The test PKI: a CA generated per test (rcgen), its `ca.pem` in a temp dir, leaf certificates
//! for `localhost`/`127.0.0.1` written atomically (temp file + rename, like a Secret update), and
//! rustls configs built from them for in-test TLS peers.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA (in `ca.pem` under [`Pki::dir`]) issuing leaf certificates.
pub struct Pki {
    /// Where `ca.pem` and the written leaves live; removed on drop.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed CA with common name `cn`.
pub fn new_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A fresh CA, written to `ca.pem`.
    pub fn new() -> Self {
        let ca = new_ca("outrigger test CA");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    /// `name` inside the PKI's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf for localhost/127.0.0.1 with common name `cn`, signed by the CA.
    pub fn issue(&self, cn: &str) -> (rcgen::Certificate, KeyPair) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert, key)
    }

    /// A leaf with `cn` as (certificate PEM, key PEM).
    pub fn leaf(&self, cn: &str) -> (String, String) {
        let (cert, key) = self.issue(cn);
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf with `cn` to `<name>.pem`/`<name>.key`.
    pub fn write_leaf(&self, name: &str, cn: &str) {
        self.write_pair(&format!("{name}.pem"), &format!("{name}.key"), cn);
    }

    /// Writes a leaf with `cn` to the files `cert` and `key`, each atomically.
    pub fn write_pair(&self, cert: &str, key: &str, cn: &str) {
        let (cert_pem, key_pem) = self.leaf(cn);
        for (file, content) in [(cert, cert_pem), (key, key_pem)] {
            let tmp = self.path(&format!(".{file}.tmp"));
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, self.path(file)).unwrap();
        }
    }

    fn chain_and_key(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (cert, key) = self.issue(cn);
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// A server config serving a fresh leaf with `cn`, offering `alpn`.
    pub fn server_config(&self, cn: &str, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let (chain, key) = self.chain_and_key(cn);
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Like [`Pki::server_config`], but clients must present a certificate from this CA (mTLS).
    pub fn mtls_server_config(&self, cn: &str, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let (chain, key) = self.chain_and_key(cn);
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A TLS acceptor serving a fresh leaf with `cn` (for in-test TLS servers).
    pub fn acceptor(&self, cn: &str) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config(cn, &[]))
    }

    /// A client config trusting only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}
