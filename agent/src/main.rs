//! Binary entry point: parse and validate the configuration (exit 64 on error), then run the
//! reader thread, the sinks and the metrics endpoint until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use outrigger_agent::config::{Cli, Config};
use outrigger_agent::kube_meta::MetaStore;
use outrigger_agent::metrics::{Enabled, Metrics};
use outrigger_agent::node::NodeCollector;
use outrigger_agent::pipeline::{ReaderConfig, run_reader};
use outrigger_agent::record::ByteBudget;
use outrigger_agent::server;
use outrigger_agent::sink::{self, Kind, SinkConfig};
use outrigger_daemon::start::{self, Signals};

const BIN: &str = "outrigger-agent";

fn main() -> ExitCode {
    let cfg = match start::configure(BIN, |cli: Cli| {
        cli.validate()
            .map_err(|msg| format!("invalid configuration: {msg}"))
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    start::logging(&cfg.cli.log);
    start::exit_code(&run(cfg), "fatal")
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let res = rt.block_on(run_async(cfg));
    // After a failure the reader may still be waiting for acknowledgements; its checkpoints are
    // already safe, so the exit does not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    res
}

async fn run_async(cfg: Config) -> anyhow::Result<()> {
    let cli = &cfg.cli;
    let enabled = Enabled {
        loki: cfg.loki_url.is_some(),
        otlp: cfg.otlp_url.is_some(),
        kube: cfg.kube,
    };
    let metrics = Arc::new(Metrics::new(enabled).with_node(NodeCollector::new(&cli.host_root)));
    let meta = Arc::new(MetaStore::default());
    let listener = start::bind("--metrics", cfg.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics endpoint listening");
    tokio::spawn(server::serve(listener, metrics.clone()));
    if cfg.kube {
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
    let mut tasks = tokio::task::JoinSet::new();
    let mut sinks: Vec<(Kind, hyper::Uri)> = Vec::new();
    if let Some(u) = &cfg.loki_url {
        sinks.push((
            Kind::Loki {
                encoding: cli.loki_encoding,
                tenant: cli.loki_tenant.clone(),
            },
            u.clone(),
        ));
    }
    if let Some(u) = &cfg.otlp_url {
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
        tasks.spawn(sink::run(
            idx,
            scfg,
            rx,
            ack_tx.clone(),
            metrics.clone(),
            meta.clone(),
            deadline_rx.clone(),
        ));
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
    // The reader runs on the blocking pool (it does file I/O and waits on the byte budget) so the
    // supervisor below can await it like the sink tasks.
    let mut reader = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            run_reader(&rcfg, tailer, senders, &ack_rx, &budget, &metrics, &stop)
        })
    };

    let mut signals = Signals::install()?;
    // The reader and the sink tasks only end on their own after a failure (a checkpoint that can
    // not be written, a panic). The agent would then stay "ready" while shipping nothing, so it
    // exits instead and lets the kubelet restart it: the checkpoints hold only acknowledged
    // offsets, so nothing is lost.
    let failed = tokio::select! {
        stop = signals.recv() => { tracing::info!("{}: flushing", stop.name()); None }
        Some(done) = tasks.join_next() => Some(match done {
            Err(e) if e.is_panic() => anyhow::anyhow!("a sink task panicked"),
            _ => anyhow::anyhow!("a sink task ended"),
        }),
        done = &mut reader => Some(match done {
            Ok(Ok(())) => anyhow::anyhow!("the reader ended"),
            Ok(Err(e)) => e.context("the reader failed"),
            Err(_) => anyhow::anyhow!("the reader panicked"),
        }),
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(err) = failed {
        tracing::error!(
            error = format!("{err:#}"),
            "stopping so the agent is restarted"
        );
        let _ = deadline_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), drain(&mut tasks)).await;
        if !reader.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut reader).await;
        }
        return Err(err);
    }
    let shutdown = Duration::from_secs(cli.shutdown_timeout_secs);
    if tokio::time::timeout(shutdown, drain(&mut tasks))
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline reached with batches undelivered");
        let _ = deadline_tx.send(true);
    }
    match reader.await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("reader thread panicked"),
    }
}

/// Waits for every sink task, however each ended: once the agent is stopping, one task's panic
/// is no reason to stop waiting for the others to deliver what they hold.
async fn drain(tasks: &mut tokio::task::JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}
