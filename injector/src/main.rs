//! outrigger-injector binary: validate configuration (exit 64 with one line, before binding),
//! load the certificate, serve the webhook and admin ports, drain on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outrigger_daemon::ConfigError;
use outrigger_daemon::cli::usage_exit;
use outrigger_daemon::start::{self, Signals};
use outrigger_injector::config::Args;
use outrigger_injector::metrics::Metrics;
use outrigger_injector::server::{State, serve_admin, serve_webhook};

const BIN: &str = "outrigger-injector";

fn main() -> ExitCode {
    let (args, proxy) = match start::configure(BIN, |args: Args| {
        let proxy = args.validate()?;
        Ok::<_, ConfigError>((args, proxy))
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (tls_config, store) =
        match outrigger_injector::tls::server_config(&args.tls_cert, &args.tls_key) {
            Ok(t) => t,
            Err(e) => {
                let setting = "--tls-cert/--tls-key (OUTRIGGER_INJECTOR_TLS_CERT/KEY)";
                return usage_exit(BIN, &ConfigError::new(setting, e.to_string()));
            }
        };
    start::logging(&args.log);
    let runtime = match start::runtime(
        BIN,
        tokio::runtime::Builder::new_multi_thread().worker_threads(2),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(run(args, proxy, tls_config, store));
    start::exit_code(&result, "fatal")
}

async fn run(
    args: Args,
    proxy: outrigger_injector::config::ProxySpec,
    tls_config: Arc<rustls::ServerConfig>,
    store: Arc<outrigger_injector::tls::CertStore>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let mut signals = Signals::install().context("installing the SIGTERM/SIGINT handlers")?;
    let webhook = start::bind("--listen", args.listen).await?;
    let admin = start::bind("--admin", args.admin).await?;
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(State {
        proxy,
        metrics: metrics.clone(),
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        draining: AtomicBool::new(false),
    });
    tracing::info!(
        listen = %webhook.local_addr()?,
        admin = %admin.local_addr()?,
        proxy_image = %state.proxy.image,
        version = env!("CARGO_PKG_VERSION"),
        "outrigger-injector serving"
    );
    tokio::spawn(outrigger_injector::tls::watch(
        args.tls_cert.clone(),
        args.tls_key.clone(),
        store,
        metrics,
        args.tls_reload_interval,
    ));
    let admin_task = tokio::spawn(serve_admin(admin, state.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let webhook_task = tokio::spawn(serve_webhook(
        webhook,
        tokio_rustls::TlsAcceptor::from(tls_config),
        state.clone(),
        stop_rx,
        args.shutdown_timeout,
    ));

    signals.recv().await;
    state.draining.store(true, Ordering::Relaxed);
    tracing::info!(delay = ?args.shutdown_delay, "shutting down: readiness off, still serving");
    tokio::time::sleep(args.shutdown_delay).await;
    let _ = stop_tx.send(true);
    let _ = webhook_task.await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}
