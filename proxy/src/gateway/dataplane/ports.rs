//! The ports the table lists, bound on `--bind-address`: a port added to the table is bound (a
//! failure is logged and counted, not fatal: the rest keep serving); a port removed (or whose
//! protocol changed) stops accepting at once and drains its connections in the background. Each
//! port has its own drain trigger, so removing one leaves the others alone; the gateway's
//! shutdown drains them all.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::metrics::PortLabels;
use super::router::{PortRouter, State};
use super::sni::Sni;
use crate::drain::{self, Outcome};
use crate::gateway::table::{Protocol, Table};
use crate::server;
use crate::shared::Shared;

struct Bound {
    protocol: Protocol,
    trigger: drain::Trigger,
    accept: JoinHandle<()>,
}

/// The bound ports.
pub struct Ports {
    bind: IpAddr,
    shared: Arc<Shared>,
    state: Arc<State>,
    bound: BTreeMap<u16, Bound>,
}

impl Ports {
    /// No port bound yet.
    pub fn new(bind: IpAddr, shared: Arc<Shared>, state: Arc<State>) -> Self {
        Self {
            bind,
            shared,
            state,
            bound: BTreeMap::new(),
        }
    }

    /// Bind and close ports so that exactly the table's are served.
    pub async fn apply(&mut self, table: &Table) {
        let wanted: BTreeMap<u16, Protocol> =
            table.ports.iter().map(|p| (p.port, p.protocol)).collect();
        let gone: Vec<u16> = self
            .bound
            .iter()
            .filter(|(port, b)| wanted.get(port) != Some(&b.protocol))
            .map(|(port, _)| *port)
            .collect();
        let timeout = self.shared.config.drain_timeout;
        for port in gone {
            let Some(b) = self.bound.remove(&port) else {
                continue;
            };
            let trigger = b.trigger;
            let drained = tokio::spawn(async move {
                trigger.start_draining();
                trigger.shutdown(timeout).await
            });
            // The listener is closed once its accept loop returned: the port can be bound again.
            let _ = b.accept.await;
            tokio::spawn(async move {
                let outcome = drained.await;
                tracing::info!(port, ?outcome, "port removed from the table: drained");
            });
        }
        for (port, protocol) in wanted {
            if self.bound.contains_key(&port) {
                continue;
            }
            match self.bind_port(port, protocol).await {
                Ok(b) => {
                    tracing::info!(port, ?protocol, bind = %self.bind, "listening");
                    self.bound.insert(port, b);
                }
                Err(e) => {
                    tracing::error!(port, error = %e, "binding a listener port failed");
                    self.state
                        .metrics
                        .bind_errors
                        .get_or_create(&PortLabels { port })
                        .inc();
                }
            }
        }
    }

    async fn bind_port(&self, port: u16, protocol: Protocol) -> anyhow::Result<Bound> {
        let listener = TcpListener::bind((self.bind, port)).await?;
        let acceptor = match protocol {
            Protocol::Http => None,
            Protocol::Https => {
                let sni = Sni {
                    state: self.state.clone(),
                    port,
                };
                let config = outrigger_tls::resolver_config(Arc::new(sni))?;
                Some(tokio_rustls::TlsAcceptor::from(config))
            }
        };
        let (trigger, watcher) = drain::channel();
        let router = PortRouter {
            port,
            state: self.state.clone(),
        };
        let accept = tokio::spawn(server::serve(
            listener,
            self.shared.clone(),
            router,
            acceptor,
            watcher,
        ));
        Ok(Bound {
            protocol,
            trigger,
            accept,
        })
    }

    /// Drain every port: keep serving for `delay` (HTTP/1 answers close their connections,
    /// HTTP/2 gets GOAWAY), close the listeners, then give in-flight requests up to `timeout`.
    pub async fn drain(self, delay: Duration, timeout: Duration) -> Outcome {
        for b in self.bound.values() {
            b.trigger.start_draining();
        }
        tokio::time::sleep(delay).await;
        let tasks: Vec<_> = self
            .bound
            .into_values()
            .map(|b| {
                tokio::spawn(async move {
                    let outcome = b.trigger.shutdown(timeout).await;
                    let _ = b.accept.await;
                    outcome
                })
            })
            .collect();
        let mut outcome = Outcome::Graceful;
        for t in tasks {
            if !matches!(t.await, Ok(Outcome::Graceful)) {
                outcome = Outcome::Forced;
            }
        }
        outcome
    }
}
