//! outrigger-proxy binary: parse and validate configuration (exit 64 on a bad setting, before any
//! port is bound), set up logging, TLS and tracing, then serve until SIGTERM/SIGINT and drain.
//! Without a subcommand it is the sidecar; `outrigger-proxy gateway` is the ingress gateway
//! (docs/gateway.md).

use std::process::ExitCode;
use std::sync::Arc;

use outrigger_daemon::ConfigError;
use outrigger_daemon::cli::usage_exit;
use outrigger_daemon::start;
use outrigger_proxy::config::{Config, Env, Mode, ParseOutcome};
use outrigger_proxy::telemetry::Tracing;

const BIN: &str = "outrigger-proxy";

fn main() -> ExitCode {
    let mode = match Mode::parse_from(std::env::args_os(), &Env) {
        Ok(m) => m,
        Err(ParseOutcome::Clap(outcome)) => return outcome.exit(BIN),
        Err(ParseOutcome::Invalid(e)) => return usage_exit(BIN, &e),
    };
    match mode {
        Mode::Sidecar(config) => sidecar(*config),
        Mode::Gateway(config) => {
            let base = config.config.clone();
            serve(&base, |tracing| async move {
                outrigger_proxy::gateway::dataplane::run(*config, tracing, start::shutdown_signal())
                    .await
            })
        }
    }
}

fn sidecar(config: Config) -> ExitCode {
    let tls = match &config.tls {
        Some(t) => match outrigger_proxy::tls::server_config(t) {
            Ok(setup) => Some(setup),
            Err(e) => {
                let setting = "--tls-cert/--tls-key/--client-ca";
                return usage_exit(BIN, &ConfigError::new(setting, e.to_string()));
            }
        },
        None => None,
    };
    let base = config.clone();
    serve(&base, |tracing| {
        outrigger_proxy::run(config, tls, tracing, start::shutdown_signal())
    })
}

/// Logging, tracing and the runtime around `serve`, then the bounded trace flush and the exit
/// status.
fn serve<F, Fut>(config: &Config, serve: F) -> ExitCode
where
    F: FnOnce(Option<Arc<Tracing>>) -> Fut,
    Fut: Future<Output = anyhow::Result<outrigger_proxy::drain::Outcome>>,
{
    start::logging(&config.log);
    // Built outside the async runtime: the OTLP HTTP exporter uses a blocking client.
    let tracing = match &config.otel {
        Some(o) => match Tracing::new(o) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                let setting = "OTEL_EXPORTER_OTLP_ENDPOINT";
                return usage_exit(BIN, &ConfigError::new(setting, e.to_string()));
            }
        },
        None => None,
    };

    // One worker (a sidecar limited to one core): the current-thread scheduler on the main
    // thread, as linkerd2-proxy runs on one core. A multi-thread runtime with one worker still
    // pays for what only several workers need: the shared inject queue, the idle-worker
    // bookkeeping on every wake-up, and a worker thread beside the main one.
    let mut builder = if config.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.workers);
        b
    };
    let runtime = match start::runtime(BIN, builder.max_blocking_threads(4)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(serve(tracing.clone()));
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
    let code = start::exit_code(&result, "outrigger-proxy failed");
    if let Err(e) = &result {
        eprintln!("{BIN}: {e:#}");
    }
    code
}
