//! Gateway harness: the data plane in-process (`dataplane::serve`, real sockets) with its table
//! published through the watch channel, tables written as routes-file JSON, and the real binary
//! in gateway mode for the signal and exit-status tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrigger_proxy::config::{Mode, ParseOutcome};
use outrigger_proxy::drain::Outcome;
use outrigger_proxy::gateway::dataplane;
use outrigger_proxy::gateway::routes_file;
use outrigger_proxy::gateway::table::Table;
use tokio::sync::{oneshot, watch};

use super::free_port;

/// A running in-process gateway.
pub struct Gateway {
    /// Publishes tables.
    pub tables: watch::Sender<Arc<Table>>,
    /// Admin listener.
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Outcome>>,
    /// Keeps the routes file alive.
    _file: tempfile::NamedTempFile,
}

/// A table from routes-file JSON.
pub fn table(json: &str) -> Arc<Table> {
    Arc::new(routes_file::parse(json).unwrap())
}

impl Gateway {
    /// Start with the routes file `json` and `args` (gateway flags).
    pub async fn start(json: &str, args: &[&str]) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), json).unwrap();
        let admin = super::free_addr();
        let mut argv = vec![
            "outrigger-proxy".to_owned(),
            "gateway".to_owned(),
            "--bind-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--admin".to_owned(),
            admin.to_string(),
            "--routes-file".to_owned(),
            file.path().display().to_string(),
            "--access-log".to_owned(),
            "false".to_owned(),
            "--drain-delay".to_owned(),
            "0".to_owned(),
            "--drain-timeout".to_owned(),
            "5s".to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let env = std::collections::HashMap::<String, String>::new();
        let config = match Mode::parse_from(argv, &env) {
            Ok(Mode::Gateway(c)) => *c,
            Ok(Mode::Sidecar(_)) => panic!("not gateway mode"),
            Err(ParseOutcome::Invalid(e)) => panic!("invalid: {e}"),
            Err(ParseOutcome::Clap(_)) => panic!("clap refused the arguments"),
        };
        let initial = match &config.source {
            outrigger_proxy::gateway::config::Source::Static(t) => t.clone(),
            outrigger_proxy::gateway::config::Source::Controller(_) => unreachable!(),
        };
        let (tx, rx) = watch::channel(initial);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let listener = tokio::net::TcpListener::bind(admin).await.unwrap();
        let task = tokio::spawn(dataplane::serve(listener, config, rx, true, None, async {
            let _ = stop_rx.await;
        }));
        let gw = Self {
            tables: tx,
            admin,
            stop: Some(stop_tx),
            task: Some(task),
            _file: file,
        };
        gw.wait_ready().await;
        gw
    }

    /// Wait until `/ready` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let admin = self.admin;
            let ready = tokio::task::spawn_blocking(move || {
                outrigger_test_support::metrics::http_get(admin, "/ready")
            })
            .await
            .unwrap();
            if ready.is_some_and(|(s, _)| s == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "gateway not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publish `json` as the new table.
    pub fn publish(&self, json: &str) {
        self.tables.send_replace(table(json));
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let admin = self.admin;
        tokio::task::spawn_blocking(move || outrigger_test_support::metrics::scrape(admin))
            .await
            .unwrap()
    }

    /// Start the drain and wait for it.
    pub async fn stop(mut self) -> Outcome {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// A port nothing listens on (connect fails at once).
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A routes file: one HTTP port, one catch-all listener, `rules` (JSON array text) and
/// `backends` (JSON array text).
pub fn simple(port: u16, rules: &str, backends: &str) -> String {
    format!(
        r#"{{"ports":[{{"port":{port},"listeners":[{{"name":"gw/l","virtualHosts":[{{"rules":{rules}}}]}}]}}],
            "backends":{backends}}}"#
    )
}

/// One backend `ns/svc:80` with `addrs` as ready endpoints.
pub fn backend(addrs: &[SocketAddr]) -> String {
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!(r#"{{"address":"{a}"}}"#))
        .collect();
    format!(
        r#"[{{"service":"ns/svc:80","endpoints":[{}]}}]"#,
        eps.join(",")
    )
}

/// A rule sending prefix `/` to `ns/svc:80`.
pub const TO_SVC: &str = r#"[{"route":"ns/r","backends":[{"service":"ns/svc:80"}]}]"#;
