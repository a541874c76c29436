//! The tool policy: a test that needs an external program (curl, promtool, kube-apiserver...)
//! asks [`require_tool`]. When the tool is missing, CI (`CI=true`) fails the test naming the tool;
//! elsewhere the test is skipped loudly: `SKIPPED: <test>: <reason>` on stderr, and appended to
//! the file named by `OUTRIGGER_SKIP_LOG` so `make test` can list every skip at the end.

use std::io::Write as _;
use std::path::PathBuf;

/// The repository root: `OUTRIGGER_ROOT`, else the workspace this crate sits in.
pub fn repo_root() -> PathBuf {
    std::env::var_os("OUTRIGGER_ROOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
        PathBuf::from,
    )
}

/// Finds `name` in `$OUTRIGGER_TOOLS/bin`, `<repo>/.tools/bin`, on `PATH`, or in `/usr/sbin`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(tools) = std::env::var_os("OUTRIGGER_TOOLS") {
        dirs.push(PathBuf::from(tools).join("bin"));
    }
    dirs.push(repo_root().join(".tools/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The path of `name`, or `None` after [`skip`]ping with "`name` not installed" (a panic in CI).
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        skip(&format!("{name} not installed"));
    }
    found
}

/// The name of the running test (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned()
}

/// Records that the running test cannot run because of `reason` (something missing from the
/// machine). Panics with the reason when `CI=true`: CI must never pass by skipping.
pub fn skip(reason: &str) {
    let line = format!("SKIPPED: {}: {reason}", test_name());
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason} (required when CI=true)"
    );
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("OUTRIGGER_SKIP_LOG") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!(
                "cannot append to OUTRIGGER_SKIP_LOG {}: {e}",
                log.to_string_lossy()
            );
        }
    }
}
