//! The certificate of an HTTPS port, chosen per handshake by SNI over the port's listeners in
//! the current table: an exact hostname, else the longest matching wildcard, else a listener
//! without a hostname. Reading the live table makes a new certificate (a renewed Secret) take
//! effect at the next handshake, with no restart.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::router::State;
use super::routing;

/// The resolver of one port.
#[derive(Debug)]
pub struct Sni {
    /// The gateway's current table.
    pub state: Arc<State>,
    /// The port it serves.
    pub port: u16,
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.state.table();
        let port = super::router::find_port(&table, self.port)?;
        let name = hello.server_name().unwrap_or("").to_ascii_lowercase();
        let mut best: Option<(&Arc<CertifiedKey>, (u8, usize))> = None;
        for l in &port.listeners {
            let Some(cert) = l.certificates.first() else {
                continue;
            };
            if let Some(score) = routing::specificity(l.hostname.as_ref(), &name)
                && best.is_none_or(|(_, b)| score > b)
            {
                best = Some((cert, score));
            }
        }
        best.map(|(c, _)| c.clone())
    }
}
