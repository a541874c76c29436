# shellcheck shell=bash
# The one skip policy of every check script (the Rust tests follow the same rule through the
# test-support crate, tools/tests through conftest): a check that cannot run because a tool is
# missing FAILS when CI=true (.ci/run sets it) and is SKIPPED loudly elsewhere. Every skip is also
# appended to $OUTRIGGER_SKIP_LOG (set by `make test`), which `make test` prints at its end.
# Sourced by scripts/lib/env.sh, so every script has it.

# skip_or_fail WHAT WHY: returns 0 after a SKIPPED line (caller skips), or exits 1 under CI=true.
skip_or_fail() {
  local what=$1 why=$2
  if [[ "${CI:-}" == true ]]; then
    echo "FAILED: $what: $why (CI=true: a missing tool is a failure; install it with scripts/tools.sh)" >&2
    exit 1
  fi
  echo "SKIPPED: $what: $why" >&2
  skip_log "SKIPPED: $what: $why"
}

# skip_log LINE: appends LINE to $OUTRIGGER_SKIP_LOG when `make test` set it.
skip_log() {
  [[ -n "${OUTRIGGER_SKIP_LOG:-}" ]] || return 0
  mkdir -p "$(dirname "$OUTRIGGER_SKIP_LOG")"
  printf '%s\n' "$1" >>"$OUTRIGGER_SKIP_LOG"
}

# known_gap WHAT WHY: a check that cannot be had on any machine of this kind (docs/tools.md names
# each one and the commands that were tried). Not a skip: it is listed at the end of `make test`
# under its own heading in CI and elsewhere, so the gap stays visible in every log.
known_gap() {
  echo "NOT CHECKED (known gap, docs/tools.md): $1: $2" >&2
  skip_log "NOT CHECKED (known gap): $1: $2"
}
