#!/usr/bin/env bash
# Benchmark: what memory footprint alone costs a one-core proxy. hyper-floor
# (proxy/examples/hyper_floor.rs) runs with 0, 8, 32 and 64 KiB of extra per-connection state
# touched per request (one byte written per cache line; no other work), and for each the table
# gives max req/s and the user and kernel CPU time per request (from /proc). The kernel does the
# same work for every variant (same syscalls, same packets), so a kernel-time rise is the cost of
# the kernel's own cache lines being evicted by the process's footprint: the effect behind
# outrigger-proxy's kernel time above hyper-floor's in bench/proxy.sh, whose footprint
# bench/proxy-instructions.sh counts in L1 misses per request.
#
# Layout as in bench/proxy.sh: the proxy pinned to CPU 0, wrk (64 keep-alive connections) and
# the upstream nginx on CPU 1. Variants alternate within each round; the table gives the median
# over ROUNDS rounds and each variant's ratio to the 0-byte variant of the same run.
#
# Usage: bench/proxy-footprint.sh      (ROUNDS=5 DURATION=5 by default; ~2 minutes)
# Needs: nginx, wrk, taskset; builds the hyper-floor example first.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5}"
TOUCH="${TOUCH:-0 8192 32768 65536}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/proxy/footprint.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
UP_PORT=18281 FL_PORT=18282

require_tools bench/proxy-footprint.sh nginx wrk taskset
(cd "$OUTRIGGER_ROOT" && cargo build --release -p outrigger-proxy --example hyper_floor >&2)

T="$(mktemp -d)"
UP_PID="" FL_PID=""
cleanup() {
  [[ -n "$FL_PID" ]] && kill "$FL_PID" 2>/dev/null
  [[ -n "$UP_PID" ]] && kill "$UP_PID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

nginx_conf "$T" "$UP_PORT" "$UP_PORT" 'default_type text/plain; return 200 "hello world\n";' \
  >"$T/nginx.conf"
taskset -c "$LOAD_CPU" nginx -p "$T" -e "$T/error.log" -c "$T/nginx.conf" &
UP_PID=$!
wait_port "$UP_PORT"

CLK_TCK=$(getconf CLK_TCK)
# One round of variant $1 (bytes touched): prints "req/s user-µs kernel-µs" per request.
measure() {
  # wrk closes its connections mid-request when it stops; hyper-floor reports each: not news.
  taskset -c "$PROXY_CPU" "$FLOOR_BIN" "127.0.0.1:$FL_PORT" "127.0.0.1:$UP_PORT" "$1" 2>/dev/null &
  FL_PID=$!
  wait_port "$FL_PORT"
  taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s "http://127.0.0.1:$FL_PORT/" >/dev/null
  local a b n
  read -r -a a <<<"$(sed 's/^.*) //' "/proc/$FL_PID/stat" | awk '{print $12, $13}')"
  n=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$FL_PORT/" |
    awk '/requests in/ {print $1}')
  read -r -a b <<<"$(sed 's/^.*) //' "/proc/$FL_PID/stat" | awk '{print $12, $13}')"
  kill "$FL_PID"
  wait "$FL_PID" 2>/dev/null || true
  FL_PID=""
  awk -v n="$n" -v d="$DURATION" -v hz="$CLK_TCK" -v u=$((b[0] - a[0])) -v k=$((b[1] - a[1])) \
    'BEGIN { printf "%.0f %.2f %.2f\n", n / d, u * 1e6 / hz / n, k * 1e6 / hz / n }'
}

declare -A RPS USR KRN
for r in $(seq 1 "$ROUNDS"); do
  for t in $TOUCH; do
    read -r rps usr krn < <(measure "$t")
    RPS[$t]+="$rps " USR[$t]+="$usr " KRN[$t]+="$krn "
    echo "round $r, $t bytes: $rps req/s, user $usr µs, kernel $krn µs per request" >&2
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
BASE=${TOUCH%% *}
{
  echo "$(run_line); median of $ROUNDS interleaved rounds of wrk -c64 for ${DURATION} s"
  echo
  echo "| state touched per request | max req/s | vs 0 B | user µs/request | kernel µs/request | kernel vs 0 B |"
  echo "|---|---|---|---|---|---|"
  for t in $TOUCH; do
    awk -v t="$t" -v r="$(median "${RPS[$t]}")" -v u="$(median "${USR[$t]}")" \
      -v k="$(median "${KRN[$t]}")" -v r0="$(median "${RPS[$BASE]}")" \
      -v k0="$(median "${KRN[$BASE]}")" \
      'BEGIN { printf "| %d B (%d lines) | %d | %.2f | %.2f | %.2f | %+.2f |\n", t, t / 64, r, r / r0, u, k, k - k0 }'
  done
} >"$T/table.md"
cat "$T/table.md"
cp "$T/table.md" "$OUT"
