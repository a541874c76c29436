//! The command-line contract every daemon keeps, checked the same way in each suite: a bad
//! setting exits 64 (`EX_USAGE`) with exactly one line on stderr.

use std::process::Command;

/// Runs `cmd`, asserts it exits 64 with one stderr line, and returns that line (`what` names the
/// case in failure messages).
pub fn usage_error(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{what}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
    err
}
