# shellcheck shell=bash
# Shared plumbing for scripts/tools.sh: logging, stamp files and timing. A stamp file
# ($OUTRIGGER_TOOLS/stamps/NAME) holds the exact pin a step installed; a step whose stamp matches
# its pin (and whose artefact still exists) is skipped, which is what makes a second run a no-op.

# Steps run in subshells (so `set -e` holds inside them), so "something changed" is a marker file.
tools_changed() { mkdir -p "$OUTRIGGER_TOOLS/logs"; : >"$OUTRIGGER_TOOLS/logs/.changed"; }

log() { printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: ERROR: %s\n' "$*" >&2; exit 1; }

# stamp_ok NAME KEY [PATH...]: true when NAME was installed with exactly KEY and every PATH exists.
stamp_ok() {
  local name=$1 key=$2 f
  shift 2
  [[ -f "$OUTRIGGER_TOOLS/stamps/$name" ]] || return 1
  [[ "$(cat "$OUTRIGGER_TOOLS/stamps/$name")" == "$key" ]] || return 1
  for f in "$@"; do [[ -e "$f" ]] || return 1; done
}

stamp_write() {
  mkdir -p "$OUTRIGGER_TOOLS/stamps"
  printf '%s\n' "$2" >"$OUTRIGGER_TOOLS/stamps/$1"
  tools_changed
}

# skip_msg NAME KEY: the one line a cached step prints.
skip_msg() { log "ok      $1 $2 (already installed)"; }

# timed LABEL CMD...: runs CMD and logs how long it took (the lead budgets CI time from these).
# CMD runs in a subshell with `set -e`; variables it sets do not come back (state lives in files).
# Note: bash ignores `set -e` (even re-enabled) anywhere below a `cmd || ...`/`if cmd`, so callers
# that need errexit inside CMD must call timed as a plain statement (see run_step in tools.sh).
timed() {
  local label=$1 start rc
  shift
  start=$(date +%s)
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  log "time    $label: $(( $(date +%s) - start )) s"
  return "$rc"
}

# key_of FILE...: a short content hash, for stamps that depend on committed files (lock files,
# generators) rather than on a single version string.
key_of() { cat "$@" | sha256sum | cut -c1-16; }
