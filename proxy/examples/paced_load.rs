//! A paced HTTP/1.1 load generator that drives several targets in lockstep, so their latencies
//! are compared under the same machine conditions. `bench/proxy.sh`'s regimes table uses it for
//! the rows at 1k req/s over 32 connections and for the side-by-side CPU row at 5k req/s.
//!
//! Why not h2load alone: `h2load --rps` fires the timers of all its connections together, so "1k
//! req/s over 32 connections" is a burst of 32 requests every 32 ms, and a request's latency is
//! mostly its place in the burst. How fast a burst turns around depends on how fast the shared
//! machine happens to be during that run: direct-to-app p50 moves by 0.2 ms from one 4 s run to
//! the next, more than a proxy adds. Variants measured one after the other therefore differ by
//! noise. Here every target gets the same load shape (all connections of a target send at the
//! same tick, one tick per `conns / rate` seconds) and the targets' ticks are spread evenly over
//! that period, so each burst of each target lands within a few milliseconds of the others', on
//! the same machine state, and one run pairs them all.
//!
//! Usage: `paced_load --rate 1000 --conns 32 --secs 30 --out DIR NAME=HOST:PORT...`; writes
//! `DIR/NAME.log` per target in h2load's `--log-file` format (start in µs since the run's start,
//! status, latency in µs) and prints one summary line per target. Responses must carry a
//! `Content-Length` (every variant's does). A failed request counts as an error and ends its
//! connection; the exit status is 1 if any request failed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Paced HTTP/1.1 load over several targets in lockstep (bench/proxy.sh)")]
struct Args {
    /// Requests per second sent to each target, spread over its connections.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Keep-alive connections per target; all of a target's connections send at the same tick.
    #[arg(long, default_value_t = 32)]
    conns: u32,
    /// How long requests are sent.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Directory for the per-target logs.
    #[arg(long)]
    out: PathBuf,
    /// Targets as NAME=HOST:PORT.
    #[arg(required = true, value_parser = target)]
    targets: Vec<(String, SocketAddr)>,
}

fn target(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s.split_once('=').ok_or("expected NAME=HOST:PORT")?;
    let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    Ok((name.to_owned(), addr))
}

/// One request's record: start (µs since the run's start), status (0: failed), latency (µs).
type Sample = (u64, u16, u64);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate == 0 || args.conns == 0 {
        bail!("--rate and --conns must be positive");
    }
    // One thread, like h2load -t1: the generator's own cost is the same for every target.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let samples = runtime.block_on(run(&args))?;
    std::fs::create_dir_all(&args.out)?;
    let mut failed = false;
    for ((name, _), mut s) in args.targets.iter().zip(samples) {
        let mut log = String::with_capacity(s.len() * 24);
        for (start, status, latency) in &s {
            writeln!(log, "{start}\t{status}\t{latency}")?;
        }
        let path = args.out.join(format!("{name}.log"));
        std::fs::write(&path, log).with_context(|| path.display().to_string())?;
        let errors = s.iter().filter(|x| x.1 == 0).count();
        failed |= errors > 0;
        s.retain(|x| x.1 != 0);
        s.sort_unstable_by_key(|x| x.2);
        let pct = |p: f64| {
            s.get(((s.len() as f64 * p) as usize).min(s.len().saturating_sub(1)))
                .map_or(0.0, |x| x.2 as f64 / 1000.0)
        };
        println!(
            "{name}: {} requests, {errors} failed, p50 {:.3} ms, p99 {:.3} ms",
            s.len(),
            pct(0.5),
            pct(0.99)
        );
    }
    if failed {
        bail!("some requests failed");
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Vec<Vec<Sample>>> {
    let period = Duration::from_secs_f64(f64::from(args.conns) / f64::from(args.rate));
    let n = u32::try_from(args.targets.len())?;
    let mut streams = Vec::new();
    for (name, addr) in &args.targets {
        let mut conns = Vec::new();
        for _ in 0..args.conns {
            let s = TcpStream::connect(addr)
                .await
                .with_context(|| format!("{name}: connect {addr}"))?;
            s.set_nodelay(true)?;
            conns.push(s);
        }
        streams.push(conns);
    }
    // Start on a whole tick a little ahead, so every connection is waiting when it comes.
    let t0 = Instant::now() + Duration::from_millis(50);
    let end = t0 + Duration::from_secs(args.secs);
    let mut tasks = Vec::new();
    for (i, conns) in (0u32..).zip(streams) {
        let offset = period * i / n;
        let host = args.targets[i as usize].1.to_string();
        let handles: Vec<_> = conns
            .into_iter()
            .map(|s| tokio::spawn(connection(s, host.clone(), t0, t0 + offset, period, end)))
            .collect();
        tasks.push(handles);
    }
    let mut out = Vec::new();
    for handles in tasks {
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await?);
        }
        all.sort_unstable_by_key(|x| x.0);
        out.push(all);
    }
    Ok(out)
}

/// Sends one GET per tick on one keep-alive connection and records each answer's latency.
async fn connection(
    mut stream: TcpStream,
    host: String,
    t0: Instant,
    first: Instant,
    period: Duration,
    end: Instant,
) -> Vec<Sample> {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: paced_load\r\n\r\n");
    let mut buf = Vec::with_capacity(4096);
    let mut samples = Vec::new();
    let mut next = first;
    while next < end {
        tokio::time::sleep_until(next).await;
        let start = Instant::now();
        let status = match exchange(&mut stream, request.as_bytes(), &mut buf).await {
            Ok(status) => status,
            Err(e) => {
                eprintln!("paced_load: {host}: {e:#}");
                0
            }
        };
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        samples.push((micros(start - t0), status, micros(start.elapsed())));
        if status == 0 {
            break;
        }
        next += period;
    }
    samples
}

/// Writes the request and reads one whole response; returns its status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(buf)? {
            let status = response.code.context("no status")?;
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .context("response without Content-Length")
                .and_then(|h| Ok(std::str::from_utf8(h.value)?.trim().parse()?))?;
            while buf.len() < head + length {
                read_more(stream, buf).await?;
            }
            if buf.len() > head + length {
                bail!("more bytes than one response");
            }
            return Ok(status);
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    if buf.len() > 64 * 1024 {
        bail!("response head over 64 KiB");
    }
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        bail!("connection closed");
    }
    Ok(())
}
