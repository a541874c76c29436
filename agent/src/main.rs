//! Binary entry point: parse and validate the configuration (exit 64 on error), then run the
//! reader thread, the sinks and the metrics endpoint until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use outrigger_agent::config::{Cli, Config};
use outrigger_agent::kube_meta::MetaStore;
use outrigger_agent::metrics::Metrics;
use outrigger_agent::node::NodeCollector;
use outrigger_agent::pipeline::{ReaderConfig, run_reader};
use outrigger_agent::record::ByteBudget;
use outrigger_agent::server;
use outrigger_agent::sink::{self, Kind, SinkConfig};

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "outrigger-agent: bad configuration: {}",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(EX_USAGE);
        }
    };
    let cfg = match cli.validate() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("outrigger-agent: bad configuration: {msg}");
            return ExitCode::from(EX_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.cli.log))
        .with_writer(std::io::stderr)
        .init();
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run_async(cfg))
}

async fn run_async(cfg: Config) -> anyhow::Result<()> {
    let cli = &cfg.cli;
    let metrics = Arc::new(Metrics::default());
    let meta = Arc::new(MetaStore::default());
    let listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .with_context(|| format!("binding --metrics {}", cfg.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics endpoint listening");
    tokio::spawn(server::serve(
        listener,
        metrics.clone(),
        NodeCollector::new(&cli.host_root),
    ));
    if cfg.kube {
        metrics.kube_enabled.store(true, Ordering::Relaxed);
        #[cfg(feature = "kube")]
        outrigger_agent::kube_watch::spawn(&cli.node_name, meta.clone()).await?;
        #[cfg(not(feature = "kube"))]
        anyhow::bail!("--kube-metadata needs the `kube` feature, which this build lacks");
    }

    let mut tcfg = file_tailer::Config::new(&cli.log_root, &cli.state_dir);
    tcfg.force_poll = cli.poll;
    tcfg.poll_interval = Duration::from_millis(cli.poll_interval_ms);
    tcfg.rotate_grace = Duration::from_millis(cli.rotate_grace_ms);
    tcfg.max_line_bytes = cli.max_line_bytes;
    let tailer = file_tailer::Tailer::new(tcfg.clone()).context("starting the tailer")?;

    let budget = ByteBudget::new(cli.max_buffer_bytes);
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(false);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    let mut sinks: Vec<(Kind, hyper::Uri)> = Vec::new();
    if let Some(u) = &cfg.loki_url {
        metrics.loki_enabled.store(true, Ordering::Relaxed);
        sinks.push((
            Kind::Loki {
                encoding: cli.loki_encoding,
                tenant: cli.loki_tenant.clone(),
            },
            u.clone(),
        ));
    }
    if let Some(u) = &cfg.otlp_url {
        metrics.otlp_enabled.store(true, Ordering::Relaxed);
        sinks.push((Kind::Otlp, u.clone()));
    }
    for (idx, (kind, url)) in sinks.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        senders.push(tx);
        let scfg = SinkConfig {
            kind,
            url,
            node: cli.node_name.clone(),
            batch_bytes: cli.batch_max_bytes,
            batch_wait: cli.batch_wait(),
            request_timeout: Duration::from_secs(cli.request_timeout_secs),
            backoff_min: Duration::from_millis(cli.retry_min_ms),
            backoff_max: Duration::from_millis(cli.retry_max_ms),
            tls: cfg.tls.clone(),
        };
        tasks.push(tokio::spawn(sink::run(
            idx,
            scfg,
            rx,
            ack_tx.clone(),
            metrics.clone(),
            meta.clone(),
            deadline_rx.clone(),
        )));
    }
    drop(ack_tx);

    let stop = Arc::new(AtomicBool::new(false));
    let rcfg = ReaderConfig {
        tailer: tcfg,
        max_joined: cli.max_line_bytes,
        checkpoint_interval: Duration::from_millis(cli.checkpoint_interval_ms),
        shutdown_timeout: Duration::from_secs(cli.shutdown_timeout_secs),
        meta: cfg.kube.then(|| meta.clone()),
    };
    let reader = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || run_reader(&rcfg, tailer, senders, &ack_rx, &budget, &metrics, &stop))
            .context("spawning reader thread")?
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: flushing"),
        _ = int.recv() => tracing::info!("SIGINT: flushing"),
    }
    stop.store(true, Ordering::Relaxed);
    let shutdown = Duration::from_secs(cli.shutdown_timeout_secs);
    let all = futures_join(tasks);
    if tokio::time::timeout(shutdown, all).await.is_err() {
        tracing::warn!("shutdown deadline reached with batches undelivered");
        let _ = deadline_tx.send(true);
    }
    let res = tokio::task::spawn_blocking(move || reader.join())
        .await
        .context("joining reader")?;
    match res {
        Ok(r) => r,
        Err(_) => anyhow::bail!("reader thread panicked"),
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
