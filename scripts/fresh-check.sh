#!/usr/bin/env bash
# The fresh-machine proof anyone can run: clones the current commit (HEAD; uncommitted changes are
# not part of it) into a temporary folder and runs .ci/run there exactly as CI does (CI=true), with
# an EMPTY toolchain dir (OUTRIGGER_TOOLS), so every tool is installed or rebuilt from its pin.
# The image cache of make cluster-e2e (OUTRIGGER_IMAGES_DIR) starts empty too, beside the toolchain
# dir. Go's, cargo's and pip's download/build caches may stay warm, as on a re-used CI machine; no
# compiler wrapper (RUSTC_WRAPPER) is inherited. Prints the wall time; fails when .ci/run fails or
# when anything in its log says SKIPPED.
#
# usage: scripts/fresh-check.sh [--twice]
#   --twice   then clone again and run .ci/run a second time on the SAME toolchain and image dirs: it must
#             pass too, and its toolchain step must say "nothing to do" (idempotence).
# Logs, the toolchain and image dirs and the e2e summaries stay in the printed folder for
# inspection; remove it when done (the image dir holds a few GB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
twice=0
[[ "${1:-}" == --twice ]] && twice=1
commit=$(git -C "$root" rev-parse HEAD)
base=$(mktemp -d /tmp/outrigger-fresh.XXXXXX)
tools="$base/tools" images="$base/images"
mkdir -p "$tools" "$images"
echo "fresh-check: commit $commit, folder $base"
if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]]; then
  echo "fresh-check: note: uncommitted changes in $root are NOT part of this check"
fi

# run_ci N: clones into $base/clone-N and runs .ci/run there; its log is $base/ci-N.log.
run_ci() {
  local n=$1 clone="$base/clone-$1" log="$base/ci-$1.log" start rc
  git clone -q "$root" "$clone"
  git -C "$clone" checkout -q "$commit"
  start=$(date +%s)
  set +e
  (
    cd "$clone"
    unset RUSTC_WRAPPER CARGO_TARGET_DIR OUTRIGGER_SKIP_LOG
    export CI=true OUTRIGGER_TOOLS="$tools" OUTRIGGER_IMAGES_DIR="$images"
    bash .ci/run </dev/null
  ) >"$log" 2>&1
  rc=$?
  set -e
  local took=$(( $(date +%s) - start ))
  echo "fresh-check: run $n: .ci/run exit $rc in ${took} s (log: $log)"
  if [[ $rc -ne 0 ]]; then
    tail -n 40 "$log"
    return 1
  fi
  if grep -n 'SKIPPED' "$log"; then
    echo "fresh-check: run $n: the lines above say SKIPPED" >&2
    return 1
  fi
  grep -E '^(NOT CHECKED|  NOT CHECKED)' "$log" | sort -u || true
  if [[ $n -eq 2 ]] && ! grep -q 'tools: done: everything was already installed at its pinned version; nothing to do' "$log"; then
    echo "fresh-check: run 2: the toolchain step installed something again" >&2
    grep -E '^tools: (build|install) ' "$log" >&2 || true
    return 1
  fi
  if [[ -f "$clone/target/cluster-e2e/summary.json" ]]; then
    cp "$clone/target/cluster-e2e/summary.json" "$base/cluster-e2e-summary-$n.json"
    echo "fresh-check: run $n: cluster-e2e summary in $base/cluster-e2e-summary-$n.json"
  fi
  rm -rf "$clone/target"
}

run_ci 1
[[ $twice -eq 1 ]] && run_ci 2
echo "fresh-check: ok"
