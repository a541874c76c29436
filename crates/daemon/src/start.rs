//! The start and end of every daemon's `main`: parse and check the configuration (a bad setting
//! prints one line naming it and exits 64, before any port is bound), JSON logs on stderr, the
//! async runtime, listeners bound with the flag named in the error, the shutdown signals, and
//! the exit status of the run.

use std::ffi::OsString;
use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{self, usage_exit};

/// Parses the process arguments into `C` and hands them to `check` (the rules that span several
/// settings). `Err` carries the exit status after printing: 0 for `--help`/`--version`, 64 with
/// one line naming the setting for a bad flag or a failed check.
pub fn configure<C, T, E>(bin: &str, check: impl FnOnce(C) -> Result<T, E>) -> Result<T, ExitCode>
where
    C: CommandFactory + FromArgMatches,
    E: Display,
{
    configure_from(bin, std::env::args_os(), check)
}

/// [`configure`] over `args` (first item: the program name).
pub fn configure_from<C, T, E, I, A>(
    bin: &str,
    args: I,
    check: impl FnOnce(C) -> Result<T, E>,
) -> Result<T, ExitCode>
where
    C: CommandFactory + FromArgMatches,
    E: Display,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let parsed = cli::parse_from::<C, _, _>(bin, args)?;
    check(parsed).map_err(|e| usage_exit(bin, &e))
}

/// JSON log lines on stderr, filtered by `filter` (checked by the `--log` flag's parser already,
/// so a filter that does not parse cannot reach here).
pub fn logging(filter: &str) {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();
}

/// Builds the runtime `builder` describes, its threads named after `bin`. A runtime that cannot
/// start is reported on stderr (logging may not be up yet) and the exit status is failure.
pub fn runtime(bin: &str, builder: &mut Builder) -> Result<Runtime, ExitCode> {
    builder.thread_name(bin).enable_all().build().map_err(|e| {
        eprintln!("{bin}: starting runtime: {e}");
        ExitCode::FAILURE
    })
}

/// A listener that could not be bound, named by the flag that set its address.
#[derive(Debug, thiserror::Error)]
#[error("binding {flag} {addr}")]
pub struct BindError {
    /// The flag, e.g. `--admin`.
    pub flag: &'static str,
    /// The address it asked for.
    pub addr: SocketAddr,
    /// Why the operating system refused.
    #[source]
    pub source: std::io::Error,
}

/// Binds the listener the flag `flag` asked for at `addr`.
pub async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { flag, addr, source })
}

/// The signal that asked a daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the kubelet (or a supervisor) stops the container.
    Term,
    /// SIGINT: Ctrl-C in a terminal.
    Int,
}

impl Stop {
    /// `SIGTERM` or `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }
}

/// SIGTERM and SIGINT handlers, installed before the daemon starts serving so a signal sent
/// during startup is not lost.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs both handlers (inside a runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Term,
            _ = self.int.recv() => Stop::Int,
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT; never, when the handlers cannot be installed (the
/// process can then only be killed, which beats exiting at once).
pub async fn shutdown_signal() {
    match Signals::install() {
        Ok(mut signals) => {
            signals.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// The exit status of a daemon's run; a failure is logged with `message` and the whole error
/// chain.
pub fn exit_code<T, E: Display>(result: &Result<T, E>, message: &str) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ConfigError;

    #[derive(clap::Parser, Debug)]
    struct Args {
        #[arg(long, env = "START_TEST_WORKERS", default_value_t = 1)]
        workers: u16,
    }

    /// Hands the arguments on, as a daemon's check hands on what it built from them.
    fn check(a: Args) -> Result<Args, ConfigError> {
        if a.workers == 0 {
            return Err(ConfigError::new(
                cli::setting::<Args>("workers"),
                "must be 1 or more",
            ));
        }
        Ok(a)
    }

    fn workers(args: &[&str]) -> Result<u16, ExitCode> {
        configure_from("t", args, check).map(|a| a.workers)
    }

    #[test]
    fn configure_parses_then_checks() {
        assert_eq!(workers(&["t", "--workers", "3"]), Ok(3));
        // Both a bad flag and a failed check exit 64.
        for args in [["t", "--workers", "x"], ["t", "--workers", "0"]] {
            assert_eq!(
                workers(&args),
                Err(ExitCode::from(crate::EX_USAGE)),
                "{args:?}"
            );
        }
        assert_eq!(workers(&["t", "--help"]), Err(ExitCode::SUCCESS));
    }

    #[tokio::test]
    async fn a_bind_error_names_the_flag_and_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind("--admin", addr).await.unwrap_err();
        assert_eq!(e.to_string(), format!("binding --admin {addr}"));
        assert_eq!(
            std::error::Error::source(&e).map(ToString::to_string),
            Some(e.source.to_string())
        );
        assert!(
            bind("--admin", "127.0.0.1:0".parse().unwrap())
                .await
                .is_ok()
        );
    }

    #[test]
    fn a_runtime_gets_the_daemons_thread_name_and_the_signal_handlers() {
        let rt = runtime("start-test", Builder::new_multi_thread().worker_threads(1)).unwrap();
        let name = rt.block_on(async {
            assert!(Signals::install().is_ok());
            tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("start-test"));
        assert_eq!(Stop::Term.name(), "SIGTERM");
        assert_eq!(Stop::Int.name(), "SIGINT");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&Ok::<(), String>(()), "fatal"), ExitCode::SUCCESS);
        assert_eq!(exit_code(&Err::<(), _>("boom"), "fatal"), ExitCode::FAILURE);
    }
}
