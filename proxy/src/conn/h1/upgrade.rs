//! The client side of a `101 Switching Protocols` tunnel: once the connection has written the
//! 101 head it hands its socket (and the bytes the client sent past its request) through a
//! oneshot to whoever took the request's [`OnUpgrade`] (see `forward::spawn_tunnel`).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::conn::Rewind;

/// An inbound connection's I/O, whatever its transport.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientIo for T {}

/// The client's connection after it switched protocols (built with the bytes the client sent
/// past its request as the prefix).
pub type ClientUpgraded = Rewind<Box<dyn ClientIo>>;

/// The upgrade did not happen (the connection ended before the 101 was written).
#[derive(Debug, thiserror::Error)]
#[error("the client connection was not upgraded")]
pub struct NotUpgraded;

/// A request's claim on its connection once a 101 has been written; in the request's
/// extensions when it asked for an upgrade (shared only because extensions must be `Clone`; the
/// first to wait gets the connection).
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<ClientUpgraded>>>>);

impl OnUpgrade {
    /// Takes the claim out of an HTTP/1 request that asked for an upgrade.
    pub fn take<B>(req: &mut http::Request<B>) -> Option<Self> {
        req.extensions_mut().remove::<Self>()
    }

    pub(super) fn new(rx: oneshot::Receiver<ClientUpgraded>) -> Self {
        Self(Arc::new(Mutex::new(Some(rx))))
    }

    /// The connection, once the 101 is on the wire.
    pub async fn wait(self) -> Result<ClientUpgraded, NotUpgraded> {
        let rx = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(NotUpgraded)?;
        rx.await.map_err(|_| NotUpgraded)
    }
}
