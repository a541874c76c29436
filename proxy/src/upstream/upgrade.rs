//! The app side of a `101 Switching Protocols` tunnel: the socket, with the bytes the app sent
//! right after its response head (read together with the head) replayed first.

use tokio::net::TcpStream;

use crate::conn::Rewind;

/// The app's connection after it switched protocols (built with the bytes already read past the
/// 101 head as the prefix).
pub type Upgraded = Rewind<TcpStream>;
