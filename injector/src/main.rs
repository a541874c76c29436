//! outrigger-injector binary: validate configuration (exit 64 with one line, before binding),
//! load the certificate, serve the webhook and admin ports, drain on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser as _;
use outrigger_injector::config::{Args, EX_USAGE};
use outrigger_injector::metrics::Metrics;
use outrigger_injector::server::{State, serve_admin, serve_webhook};
use tokio::net::TcpListener;

fn usage_exit(line: &str) -> ExitCode {
    eprintln!("outrigger-injector: {line}");
    ExitCode::from(EX_USAGE as u8)
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let proxy = match args.validate() {
        Ok(p) => p,
        Err(e) => return usage_exit(&e.to_string()),
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            return usage_exit(&format!(
                "invalid configuration: --log (OUTRIGGER_INJECTOR_LOG): {e}"
            ));
        }
    };
    let (tls_config, store) = match outrigger_injector::tls::server_config(
        &args.tls_cert,
        &args.tls_key,
    ) {
        Ok(t) => t,
        Err(e) => {
            return usage_exit(&format!(
                "invalid configuration: --tls-cert/--tls-key (OUTRIGGER_INJECTOR_TLS_CERT/KEY): {e}"
            ));
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
        max_body: args.max_body,
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
