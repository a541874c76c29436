//! The command-line contract every daemon keeps: typed flag values (one duration syntax, one size
//! syntax, one boolean syntax, one address syntax for all three binaries), and the exit path for
//! a bad setting: one line naming the flag and its environment variable, exit status 64, before
//! any port is bound. `--help`/`--version` print and exit 0.

use std::ffi::OsString;
use std::fmt::Display;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

/// Exit status for bad configuration (`EX_USAGE` from sysexits.h).
pub const EX_USAGE: u8 = 64;

/// A setting that parsed but makes no sense (alone or together with others).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// The flag and its environment variable, e.g. `--app (OUTRIGGER_APP)`.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// A bad `setting`, explained by `message`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// Why a flag value was refused; clap puts it after the flag's name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

impl ValueError {
    /// A refusal explained by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Prints `<bin>: <error>` on stderr and returns exit status 64.
pub fn usage_exit(bin: &str, error: &dyn Display) -> ExitCode {
    eprintln!("{bin}: {error}");
    ExitCode::from(EX_USAGE)
}

/// Parses the process arguments into `C`. On `--help`/`--version` prints them and returns
/// `Err(0)`; on a bad flag prints one line naming it (with its environment variable) and returns
/// `Err(64)`.
pub fn parse<C: CommandFactory + FromArgMatches>(bin: &str) -> Result<C, ExitCode> {
    parse_from(bin, std::env::args_os())
}

/// [`parse`] over `args` (first item: the program name).
pub fn parse_from<C, I, T>(bin: &str, args: I) -> Result<C, ExitCode>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    try_parse_from::<C, _, _>(args).map_err(|outcome| outcome.exit(bin))
}

/// Why [`try_parse_from`] produced no value.
#[derive(Debug)]
pub enum Outcome {
    /// `--help` or `--version`: print it, exit 0.
    Print(clap::Error),
    /// A bad flag: the one line to print before exiting 64.
    Invalid(String),
}

impl Outcome {
    /// Prints what the outcome says and returns the exit status: 0 after `--help`/`--version`,
    /// 64 after the one line naming a bad flag.
    pub fn exit(self, bin: &str) -> ExitCode {
        match self {
            Self::Print(e) => {
                let _ = e.print();
                ExitCode::SUCCESS
            }
            Self::Invalid(line) => usage_exit(bin, &line),
        }
    }
}

/// Parses `args` into `C` without printing or exiting (for tests and [`parse_from`]).
pub fn try_parse_from<C, I, T>(args: I) -> Result<C, Outcome>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = C::command();
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|mut m| C::from_arg_matches_mut(&mut m));
    parsed.map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        {
            Outcome::Print(e)
        } else {
            Outcome::Invalid(usage_line(&cmd, &e))
        }
    })
}

/// `--flag (ENV_VAR)` for the argument with id `id` of `C` (the id is the field name).
pub fn setting<C: CommandFactory>(id: &str) -> String {
    let cmd = C::command();
    cmd.get_arguments()
        .find(|a| a.get_id() == id)
        .map_or_else(|| id.to_owned(), describe)
}

fn describe(arg: &clap::Arg) -> String {
    let flag = arg
        .get_long()
        .map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
    match arg.get_env() {
        Some(env) => format!("{flag} ({})", env.to_string_lossy()),
        None => flag,
    }
}

/// One line for a clap error: names the flag and its environment variable (a value from the
/// environment is reported by clap under the flag's name only), the value, and the reason.
fn usage_line(cmd: &clap::Command, e: &clap::Error) -> String {
    let first_line = || {
        let rendered = e.render().to_string();
        let line = rendered
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_owned();
        format!("invalid configuration: {line}")
    };
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return first_line();
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return first_line();
    };
    let long = shown.split_whitespace().next().unwrap_or(shown);
    let Some(arg) = cmd.get_arguments().find(|a| {
        a.get_long()
            .is_some_and(|l| long.strip_prefix("--") == Some(l))
    }) else {
        return first_line();
    };
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!("{v:?}"),
        _ => String::from("value"),
    };
    let reason = std::error::Error::source(e).map_or_else(
        || match e.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
            _ => String::from("not accepted"),
        },
        ToString::to_string,
    );
    format!(
        "invalid configuration: {}: {value}: {reason}",
        describe(arg)
    )
}

/// Units a duration may use: humantime's, minus the calendar ones (`M` is a month of 30.44 days,
/// `y` a year of 365.25 days; `1M` reads like a size or a minute).
const DURATION_UNITS: &[&str] = &[
    "ns", "nsec", "nanos", "us", "µs", "usec", "micros", "ms", "msec", "millis", "s", "sec",
    "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour",
    "hours", "d", "day", "days",
];

/// Longest accepted duration: a year. Longer is a typo, and tokio's timers misbehave near
/// `Duration::MAX`.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration in the one syntax of every Outrigger binary: humantime (`250ms`, `1.5s`, `2m`,
/// `1h30m`, `0`) with a strict check on top, because humantime is lenient where a typo should
/// fail: whitespace is refused (humantime reads `1 0s` as 10 s and `5 s` as 5 s), calendar units
/// are refused (see [`DURATION_UNITS`]), a bare number other than `0` is refused (seconds or
/// milliseconds?), and values above a year are refused.
pub fn duration(s: &str) -> Result<Duration, ValueError> {
    if s.is_empty() {
        return Err(ValueError("empty duration (e.g. 500ms, 5s, 2m)".into()));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(ValueError(format!(
            "{s:?} contains whitespace (write e.g. 1m30s)"
        )));
    }
    let mut units = s
        .split(|c: char| c.is_ascii_digit() || c == '.')
        .filter(|u| !u.is_empty());
    if let Some(unit) = units.clone().find(|u| !DURATION_UNITS.contains(u)) {
        return Err(ValueError(format!(
            "unknown duration unit {unit:?} in {s:?} (use ns, us, ms, s, m, h or d)"
        )));
    }
    if units.next().is_none() && s != "0" {
        return Err(ValueError(format!(
            "{s:?} has no unit (write e.g. {s}s or {s}ms)"
        )));
    }
    let d = humantime::parse_duration(s).map_err(|e| ValueError(format!("{s:?}: {e}")))?;
    if d > MAX_DURATION {
        return Err(ValueError(format!("{s:?} is longer than a year")));
    }
    Ok(d)
}

/// A [`duration`] greater than zero.
pub fn positive_duration(s: &str) -> Result<Duration, ValueError> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err(ValueError("must be greater than 0".into()));
    }
    Ok(d)
}

/// A byte size: `512`, `16KiB`, `10MiB`, `1GiB`; `K`/`KB`, `M`/`MB`, `G`/`GB` (any case) mean
/// the same binary multiples. Whole numbers only.
pub fn size(s: &str) -> Result<u64, ValueError> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| ValueError(format!("{s:?} is not a size (e.g. 65536, 64KiB, 10MiB)")))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(ValueError(format!(
                "unknown size unit {other:?} (use KiB, MiB or GiB)"
            )));
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| ValueError(format!("{s:?} is out of range")))
}

/// A [`size`] parser that also requires the value to lie in `range` (for `value_parser = ...`).
pub fn size_in(
    range: std::ops::RangeInclusive<u64>,
) -> impl Fn(&str) -> Result<u64, ValueError> + Clone + Send + Sync + 'static {
    move |s| {
        let n = size(s)?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(ValueError(format!(
                "{s:?} is not between {} and {} bytes",
                range.start(),
                range.end()
            )))
        }
    }
}

/// A boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case).
pub fn bool(s: &str) -> Result<bool, ValueError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ValueError(format!("{s:?} is not a boolean (true/false)"))),
    }
}

/// A socket address: `IP:PORT`, `[IPv6]:PORT`, or `HOST:PORT` resolved once at startup (the
/// first address wins).
pub fn socket_addr(s: &str) -> Result<SocketAddr, ValueError> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| ValueError(format!("{s:?} is not HOST:PORT ({e})")))?;
    addrs
        .next()
        .ok_or_else(|| ValueError(format!("{s:?} resolves to no address")))
}

/// Worker threads a daemon's runtime may be given.
pub const WORKERS: std::ops::RangeInclusive<u16> = 1..=256;

/// A worker-thread count in [`WORKERS`].
pub fn workers(s: &str) -> Result<u16, ValueError> {
    s.parse::<u16>()
        .ok()
        .filter(|n| WORKERS.contains(n))
        .ok_or_else(|| {
            ValueError(format!(
                "{s:?} is not a worker count ({}..={})",
                WORKERS.start(),
                WORKERS.end()
            ))
        })
}

/// A `tracing` filter (EnvFilter syntax), checked so a typo exits 64 instead of logging nothing.
pub fn log_filter(s: &str) -> Result<String, ValueError> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| ValueError(format!("{s:?} is not a log filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_are_whole_numbers_in_range() {
        assert_eq!(workers("1").unwrap(), 1);
        assert_eq!(workers("256").unwrap(), 256);
        for bad in ["0", "257", "-1", "1.5", "", " 2", "two", "auto"] {
            assert!(workers(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_use_humantime_units() {
        for (s, want) in [
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("10us", Duration::from_micros(10)),
            ("1d", Duration::from_secs(86_400)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(duration(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn durations_refuse_what_humantime_lets_through() {
        // Each of these parses with plain humantime.
        for lenient in ["1 0s", "5 s", "1h 30m", " 5s", "1M", "2y", "1w"] {
            if let Ok(d) = humantime::parse_duration(lenient) {
                assert!(duration(lenient).is_err(), "{lenient:?} = {d:?} accepted");
            }
        }
        assert!(humantime::parse_duration("1 0s").is_ok());
        for bad in ["", "30", "-1s", "s", "5 parsecs", "1.s", "400days", "5S"] {
            assert!(duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(duration("30").unwrap_err().to_string().contains("no unit"));
        assert!(positive_duration("0s").is_err());
        assert_eq!(positive_duration("1ms").unwrap(), Duration::from_millis(1));
    }

    #[test]
    fn sizes() {
        assert_eq!(size("64KiB").unwrap(), 65536);
        assert_eq!(size("10MiB").unwrap(), 10 << 20);
        assert_eq!(size("1gb").unwrap(), 1 << 30);
        assert_eq!(size("100").unwrap(), 100);
        assert_eq!(size_in(1024..=2048)("1KiB").unwrap(), 1024);
        assert!(size_in(1024..=2048)("4KiB").is_err());
        for bad in ["1.5MiB", "", "12XB", "-1", " 5", "99999999999999GiB"] {
            assert!(size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bools_and_addresses() {
        for t in ["true", "TRUE", "1", "yes", "on"] {
            assert!(bool(t).unwrap(), "{t}");
        }
        for f in ["false", "0", "No", "off"] {
            assert!(!bool(f).unwrap(), "{f}");
        }
        assert!(bool("maybe").is_err());
        assert_eq!(log_filter("info,hyper=warn").unwrap(), "info,hyper=warn");
        assert!(log_filter("a=b=c").is_err());
        assert_eq!(
            socket_addr("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            socket_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(socket_addr("localhost:80").unwrap().port(), 80);
        assert!(socket_addr("nope").is_err());
        assert!(socket_addr("127.0.0.1").is_err());
    }

    /// A small command with the same shapes the daemons use.
    #[derive(Debug, clap::Parser)]
    #[command(name = "t")]
    struct Cli {
        /// A duration.
        #[arg(long, env = "T_DELAY", default_value = "5s", value_parser = duration)]
        delay: Duration,
        /// A bounded count.
        #[arg(long, env = "T_COUNT", default_value = "2", value_parser = clap::value_parser!(u32).range(0..=10))]
        count: u32,
        /// A boolean that takes a value.
        #[arg(long, env = "T_ON", default_value = "true", value_parser = bool, action = clap::ArgAction::Set)]
        on: bool,
    }

    fn invalid(args: &[&str]) -> String {
        match try_parse_from::<Cli, _, _>(args.iter().copied()) {
            Err(Outcome::Invalid(line)) => line,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_one_line_naming_flag_and_env() {
        let line = invalid(&["t", "--delay", "5 parsecs"]);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with("invalid configuration: --delay (T_DELAY): \"5 parsecs\": "));
        let line = invalid(&["t", "--count", "11"]);
        assert!(line.contains("--count (T_COUNT)"), "{line}");
        let line = invalid(&["t", "--on", "maybe"]);
        assert!(
            line.contains("--on (T_ON)") && line.contains("not a boolean"),
            "{line}"
        );
        let line = invalid(&["t", "--no-such-flag"]);
        assert!(line.contains("--no-such-flag"), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(matches!(
            try_parse_from::<Cli, _, _>(["t", "--help"]),
            Err(Outcome::Print(_))
        ));
        let ok = try_parse_from::<Cli, _, _>(["t", "--on", "off", "--delay", "1m"]).unwrap();
        assert!(!ok.on);
        assert_eq!(ok.delay, Duration::from_secs(60));
        assert_eq!(ok.count, 2);
        assert_eq!(setting::<Cli>("delay"), "--delay (T_DELAY)");
    }
}
