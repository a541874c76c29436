//! What one small write to a loopback TCP socket costs, by the syscall that makes it: `writev`
//! of two buffers (a response head and a small body, as tokio issues for hyper's queued buffers),
//! `writev` of one buffer, and `send` of the two joined (what `outrigger_proxy::coalesce` does,
//! copy included). Each write is followed by the peer's `recv` of it, the same for every mode,
//! so the differences between modes are the write path's own. Modes alternate within each
//! round. `bench/proxy-syscalls.sh` runs it pinned to one CPU and writes the table.
//!
//! Usage: `socket_writes [ROUNDS] [WRITES]` (defaults 5 and 200000).

use std::io::{IoSlice, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::Context as _;

const HEAD: usize = 150;
const BODY: usize = 12;

#[derive(Clone, Copy)]
enum Mode {
    WritevTwo,
    WritevOne,
    SendJoined,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::WritevTwo => "writev, 2 buffers (head + body)",
            Mode::WritevOne => "writev, 1 buffer",
            Mode::SendJoined => "send, 2 buffers joined first",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: socket_writes [ROUNDS] [WRITES]";
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse()).context(usage)?;
    let writes: u32 = args
        .next()
        .map_or(Ok(200_000), |a| a.parse())
        .context(usage)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut writer = TcpStream::connect(listener.local_addr()?)?;
    let (mut reader, _) = listener.accept()?;
    writer.set_nodelay(true)?;

    let modes = [Mode::WritevTwo, Mode::WritevOne, Mode::SendJoined];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (i, &mode) in modes.iter().enumerate() {
            ns[i].push(run(mode, writes, &mut writer, &mut reader)?);
        }
    }

    println!("| write | ns per write + peer read (median of {rounds} rounds) | vs send |");
    println!("|---|---|---|");
    let send = median(&ns[2]);
    for (i, mode) in modes.iter().enumerate() {
        let m = median(&ns[i]);
        println!("| {} | {m:.0} | {:+.0} ns |", mode.label(), m - send);
    }
    Ok(())
}

fn run(mode: Mode, writes: u32, w: &mut TcpStream, r: &mut TcpStream) -> anyhow::Result<f64> {
    let head = [b'h'; HEAD];
    let body = [b'b'; BODY];
    let mut joined = [0u8; HEAD + BODY];
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    for _ in 0..writes {
        let n = match mode {
            // std's vectored write is `writev`, its plain write `send` (as tokio's and mio's).
            Mode::WritevTwo => w.write_vectored(&[IoSlice::new(&head), IoSlice::new(&body)])?,
            Mode::WritevOne => w.write_vectored(&[IoSlice::new(&joined)])?,
            Mode::SendJoined => {
                joined[..HEAD].copy_from_slice(&head);
                joined[HEAD..].copy_from_slice(&body);
                w.write(&joined)?
            }
        };
        anyhow::ensure!(n == HEAD + BODY, "short write of {n} bytes");
        let mut got = 0;
        while got < n {
            got += r.read(&mut buf)?;
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(writes))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}
