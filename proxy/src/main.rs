//! outrigger-proxy binary: parse and validate configuration (exit 64 on a bad setting, before any
//! port is bound), set up logging, TLS and tracing, then serve until SIGTERM/SIGINT and drain.

use std::process::ExitCode;
use std::sync::Arc;

use outrigger_daemon::cli::{Outcome, usage_exit};
use outrigger_proxy::config::{Config, Env, ParseOutcome};
use outrigger_proxy::telemetry::Tracing;

const BIN: &str = "outrigger-proxy";

fn main() -> ExitCode {
    let config = match Config::parse_from(std::env::args_os(), &Env) {
        Ok(c) => c,
        Err(ParseOutcome::Clap(Outcome::Print(e))) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(ParseOutcome::Clap(Outcome::Invalid(line))) => return usage_exit(BIN, &line),
        Err(ParseOutcome::Invalid(e)) => return usage_exit(BIN, &e),
    };
    // Checked by the flag's parser already, so this cannot fail.
    let filter = tracing_subscriber::EnvFilter::new(&config.log);
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();

    let tls = match &config.tls {
        Some(t) => match outrigger_proxy::tls::server_config(t) {
            Ok(setup) => Some(setup),
            Err(e) => {
                return usage_exit(
                    BIN,
                    &format!("invalid configuration: --tls-cert/--tls-key/--client-ca: {e}"),
                );
            }
        },
        None => None,
    };
    // Built outside the async runtime: the OTLP HTTP exporter uses a blocking client.
    let tracing = match &config.otel {
        Some(o) => match Tracing::new(o) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                return usage_exit(
                    BIN,
                    &format!("invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: {e}"),
                );
            }
        },
        None => None,
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .max_blocking_threads(4)
        .thread_name("outrigger-proxy")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("outrigger-proxy: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(outrigger_proxy::run(
        config,
        tls,
        tracing.clone(),
        shutdown_signal(),
    ));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Some(t) = tracing {
        // Bounded flush: an unreachable collector must not push the exit past the grace period.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            t.shutdown();
            let _ = tx.send(());
        });
        if rx
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err()
        {
            eprintln!("outrigger-proxy: trace flush did not finish in 500ms; exiting anyway");
        }
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "outrigger-proxy failed");
            eprintln!("outrigger-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can only be killed; never resolve.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
