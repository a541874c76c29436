//! outrigger-injector binary: validate configuration (exit 64 with one line, before binding),
//! load the certificate, serve the webhook and admin ports, drain on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outrigger_daemon::cli::{self, usage_exit};
use outrigger_injector::config::Args;
use outrigger_injector::metrics::Metrics;
use outrigger_injector::server::{State, serve_admin, serve_webhook};
use tokio::net::TcpListener;

const BIN: &str = "outrigger-injector";

fn main() -> ExitCode {
    let args: Args = match cli::parse(BIN) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let proxy = match args.validate() {
        Ok(p) => p,
        Err(e) => return usage_exit(BIN, &e),
    };
    // Checked by the flag's parser already, so this cannot fail.
    let filter = tracing_subscriber::EnvFilter::new(&args.log);
    let (tls_config, store) = match outrigger_injector::tls::server_config(
        &args.tls_cert,
        &args.tls_key,
    ) {
        Ok(t) => t,
        Err(e) => {
            return usage_exit(
                BIN,
                &format!(
                    "invalid configuration: --tls-cert/--tls-key (OUTRIGGER_INJECTOR_TLS_CERT/KEY): {e}"
                ),
            );
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("outrigger-injector")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("outrigger-injector: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, proxy, tls_config, store)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    args: Args,
    proxy: outrigger_injector::config::ProxySpec,
    tls_config: Arc<rustls::ServerConfig>,
    store: Arc<outrigger_injector::tls::CertStore>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};

    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let webhook = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let admin = TcpListener::bind(args.admin)
        .await
        .with_context(|| format!("binding --admin {}", args.admin))?;
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

    tokio::select! {
        _ = sigterm.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    state.draining.store(true, Ordering::Relaxed);
    tracing::info!(delay = ?args.shutdown_delay, "shutting down: readiness off, still serving");
    tokio::time::sleep(args.shutdown_delay).await;
    let _ = stop_tx.send(true);
    let _ = webhook_task.await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}
