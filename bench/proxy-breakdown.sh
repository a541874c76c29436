#!/usr/bin/env bash
# Benchmark (diagnosis, not a test): where a proxy's time goes in each sidecar regime of
# bench/proxy.sh's second table (issue 21): h2load --h1 over 32 connections at 1k and at 5k req/s,
# and wrk -t1 -c32 at saturation. Per variant and regime, from separate runs of the same load:
# - CPU per request (perf's task-clock), syscalls per request (raw_syscalls:sys_enter), context
#   switches per request (perf), and of those the voluntary ones (/proc/PID/task/*/status: the
#   thread went to sleep, so each is a wake-up to come);
# - the syscalls by name per request (`perf trace -s`; it slows the process, so at saturation
#   the batching, and with it the per-request counts, are those of a somewhat slower proxy);
# - for outrigger-proxy, the top symbols by self time (`perf record -g`, 4 kHz) at 1k req/s and
#   at saturation. That needs symbols: a second build of this tree with symbols and frame
#   pointers (in $CARGO_TARGET_DIR/profiling, built here when missing) runs for the profile only;
#   all counts come from the release binary the benchmarks measure. OUTRIGGER_PROXY_PROF_BIN
#   names another symbol build to profile, OUTRIGGER_PROXY_BASE_PROF_BIN the base's (profiled
#   first, at the same regimes).
# - memory with 1,000 busy connections (MEM_VARIANTS, default outrigger-proxy hyper-floor
#   nginx): idle VmRSS, then VmRSS and RssAnon 3 s into wrk -t1 -c1000 -d4s, the connections to
#   the app at that moment (ss), VmHWM after it, and the RSS added per connection (inbound plus
#   app connections). MEMORY_ONLY=1 runs just this part.
# Layout as in bench/proxy.sh (proxy pinned to CPU 0; load generator + upstream on CPU 1).
#
# Usage: bench/proxy-breakdown.sh   (SECS=6 per run; BREAKDOWN_VARIANTS="outrigger-proxy nginx
#        haproxy", any of bench/proxy.sh's variants; output also in $OUT, default
#        bench/proxy/breakdown.md; ~4 minutes)
# Needs: perf (run as root, or perf_event_paranoid <= 1 and tracefs access), nginx, haproxy,
# wrk, h2load, taskset.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

SECS="${SECS:-6}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/proxy/breakdown.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
BIN="${OUTRIGGER_PROXY_BIN:-$CARGO_TARGET_DIR/release/outrigger-proxy}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
PROF_TARGET="$CARGO_TARGET_DIR/profiling"
PROF_BIN="${OUTRIGGER_PROXY_PROF_BIN:-$PROF_TARGET/release/outrigger-proxy}"
BASE_BIN="${OUTRIGGER_PROXY_BASE_BIN:-}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
CONNS=32
# shellcheck disable=SC2206 # word splitting of the overrides is intended
VARIANTS=(${BREAKDOWN_VARIANTS:-outrigger-proxy nginx haproxy})
# shellcheck disable=SC2206
MEM_VARIANTS=(${MEM_VARIANTS:-outrigger-proxy hyper-floor nginx})
REGIMES=(1k 5k max)
if [[ "${MEMORY_ONLY:-0}" == 1 ]]; then VARIANTS=() REGIMES=(); fi
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"

require_tools bench/proxy-breakdown.sh perf nginx haproxy wrk h2load taskset ss
build_proxy_binaries
# Built every time unless named (a no-op when up to date), like the release binary: a stale
# profiling build would silently profile old code.
if [[ -z "${OUTRIGGER_PROXY_PROF_BIN:-}" ]]; then
  echo "building outrigger-proxy with symbols and frame pointers for perf record..." >&2
  (cd "$OUTRIGGER_ROOT" && CARGO_TARGET_DIR="$PROF_TARGET" CARGO_PROFILE_RELEASE_STRIP=none \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
    cargo build --release -p outrigger-proxy --bin outrigger-proxy >&2)
fi
bench_start

# load REGIME TAG: runs the regime's load against VPORT; prints the requests it completed.
load() {
  local rps
  case "$1" in
    1k | 5k)
      rps=$(awk -v r="${1%k}000" -v c="$CONNS" 'BEGIN { printf "%.4f", r / c }')
      taskset -c "$LOAD_CPU" h2load --h1 -c "$CONNS" --rps "$rps" -D "$SECS" \
        --log-file "$T/$2.log" "http://127.0.0.1:$VPORT/" >"$T/$2.report" 2>&1 || true
      awk -F'\t' '$2 == 200' "$T/$2.log" | wc -l ;;
    max)
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$VPORT/" >"$T/$2.report" 2>&1 || true
      awk '/requests in/ {print $1}' "$T/$2.report" ;;
  esac
}

pid_list() { tree_pids "$VPID" | paste -sd, -; }

# attach PERF-PID / detach: a perf tool attached to the proxy's pids in the background (so that
# neither the load generator nor a wrapper shell is counted), stopped with SIGINT after the load.
attach() { PERF_PID=$1; sleep 0.5; }
detach() { kill -INT "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; }

voluntary() { # voluntary context switches of every thread of the process tree
  local total=0 p t v
  for p in $(tree_pids "$VPID"); do
    for t in /proc/"$p"/task/*/status; do
      v=$(awk '/^voluntary_ctxt_switches:/ {print $2}' "$t" 2>/dev/null || echo 0)
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}

per() { awk -v a="$1" -v n="$2" -v f="${3:-%.2f}" 'BEGIN { if (n > 0) printf f, a / n; else print "-" }'; }

ROWS=() SYSCALL_ROWS=()
for v in "${VARIANTS[@]}"; do
  for g in "${REGIMES[@]}"; do
    echo "== breakdown: $v at $g" >&2
    start_variant "$v"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
    # Counting run: perf stat, attached to the proxy only, for as long as the load runs.
    vol0=$(voluntary)
    perf stat -x, -o "$T/stat" -e task-clock,raw_syscalls:sys_enter,context-switches \
      -p "$(pid_list)" >/dev/null 2>&1 &
    attach $!
    load "$g" "$v-$g-stat" >"$T/n"
    detach
    vol1=$(voluntary)
    n=$(tail -1 "$T/n"); n=${n:-0}
    read -r clock sys ctx <<<"$(awk -F, '
      $3 == "task-clock" { c = $1 } $3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { x = $1 }
      END { print c + 0, s + 0, x + 0 }' "$T/stat")"
    ROWS+=("| $v | $g | $n | $(per "$(awk -v c="$clock" 'BEGIN { print c * 1000 }')" "$n" "%.1f") | $(per "$sys" "$n") | $(per "$ctx" "$n") | $(per $((vol1 - vol0)) "$n") |")
    # Naming run: the same load under perf trace -s.
    perf trace -s -p "$(pid_list)" -o "$T/trace" >/dev/null 2>&1 &
    attach $!
    load "$g" "$v-$g-trace" >"$T/n"
    detach
    n=$(tail -1 "$T/n"); n=${n:-0}
    SYSCALL_ROWS+=("| $v | $g | $(awk -v n="$n" '
      $1 ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= 8 { c[$1] += $2 }
      END { for (s in c) if (n > 0 && c[s] / n >= 0.01) printf "%s %.2f\n", s, c[s] / n }' "$T/trace" |
      sort -k2 -g -r | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }') |")
    stop_variant
  done
done

# Profiles of outrigger-proxy (the symbol build) at 1k req/s and at saturation; of the base too
# when OUTRIGGER_PROXY_BASE_PROF_BIN names its symbol build.
PROFILES=""
profile() { # label symbol-binary regime
  echo "== perf record: $1 (symbols) at $3" >&2
  BIN="$2" start_variant outrigger-proxy
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
  perf record -F 4000 -g -o "$T/perf.data" -p "$VPID" >/dev/null 2>&1 &
  attach $!
  load "$3" "prof-$1-$3" >"$T/n"
  detach
  n=$(tail -1 "$T/n")
  stop_variant
  PROFILES+=$'\n'"**$1 at $3** ($n requests; samples by self time, top 25 symbols; [k] kernel):"$'\n\n```\n'
  PROFILES+="$(perf report -i "$T/perf.data" --no-children -g none --sort sym --stdio -q 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed -n 1,25p)"
  PROFILES+=$'\n```\n\nBy shared object:\n\n```\n'
  PROFILES+="$(perf report -i "$T/perf.data" --no-children -g none --sort dso --stdio -q 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed -n 1,8p)"
  PROFILES+=$'\n```\n'
}
for g in "${REGIMES[@]}"; do
  [[ "$g" == 5k ]] && continue
  if [[ -n "${OUTRIGGER_PROXY_BASE_PROF_BIN:-}" ]]; then
    profile outrigger-proxy-base "$OUTRIGGER_PROXY_BASE_PROF_BIN" "$g"
  fi
  profile outrigger-proxy "$PROF_BIN" "$g"
done

MEM_ROWS=()
for v in "${MEM_VARIANTS[@]}"; do
  echo "== memory with 1,000 busy connections: $v" >&2
  start_variant "$v"
  taskset -c "$LOAD_CPU" wrk -t1 -c4 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
  sleep 0.5
  idle=$(rss_kib "$VPID")
  taskset -c "$LOAD_CPU" wrk -t1 -c1000 -d4s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 &
  wrk_pid=$!
  sleep 3
  busy=$(rss_kib "$VPID") anon=$(status_kib "$VPID" RssAnon)
  app=$(ss -tnH state established "( dport = :$UP_PORT )" | wc -l)
  wait "$wrk_pid" || true
  hwm=$(status_kib "$VPID" VmHWM)
  stop_variant
  MEM_ROWS+=("| $v | $(mib "$idle") | $(mib "$busy") ($(mib "$anon")) | $(mib "$hwm") | $app | $(per $((busy - idle)) $((1000 + app)) "%.1f") |")
done

{
  echo "$(run_line); commit $(git -C "$OUTRIGGER_ROOT" rev-parse --short HEAD)"
  echo "Proxy pinned to CPU $PROXY_CPU; load generator + upstream (nginx, 12-byte body) on CPU $LOAD_CPU; $CONNS keep-alive connections; 1k / 5k: h2load --h1 at that total rate for ${SECS}s; max: wrk -t1 -c$CONNS -d${SECS}s; one run per figure"
  if (( ${#ROWS[@]} > 0 )); then
    echo
    echo "| variant | regime | requests | CPU-ms per 1k req (task-clock) | syscalls per req | context switches per req | voluntary (sleeps) per req |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Syscalls by name per request (perf trace -s, a separate run of the same load; ≥ 0.01 per request):"
    echo
    echo "| variant | regime | syscalls per request |"
    echo "|---|---|---|"
    printf '%s\n' "${SYSCALL_ROWS[@]}"
  fi
  echo "$PROFILES"
  if (( ${#MEM_ROWS[@]} > 0 )); then
    echo
    echo "Memory with 1,000 busy connections (wrk -t1 -c1000; busy = 3 s in; app connections counted with ss at that moment):"
    echo
    echo "| variant | idle RSS (MiB) | RSS busy (RssAnon) (MiB) | VmHWM (MiB) | app connections | KiB added per connection (inbound + app) |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${MEM_ROWS[@]}"
  fi
} >"$T/out.md"
cat "$T/out.md"
cp "$T/out.md" "$OUT"
