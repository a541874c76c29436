#!/usr/bin/env bash
# Benchmark: direct-to-app vs outrigger-proxy vs hyper-floor (hyper with none of the proxy's
# features, proxy/examples/hyper_floor.rs) vs nginx vs HAProxy as one-core HTTP/1.1 reverse
# proxies in front of the same upstream, in one run. Prints a markdown table (and writes it to
# $OUT, default bench/proxy/results.md) with: max req/s (wrk, median of ROUNDS interleaved
# rounds), p50/p99/p99.9 at fixed 1k and 5k req/s (h2load --rps, per-request log), added latency
# vs direct, CPU-ms per 1,000 requests (from /proc, during a separate 5k req/s run), RSS idle and
# at 1,000 keep-alive connections. Then a second table (bench/proxy-regimes.sh, written to
# $OUT_REGIMES, default bench/proxy/regimes.md): the sidecar regimes of issue 21 as named rows
# (1k and 5k req/s over 32 connections, peak RSS with 1,000 busy connections, idle RSS, max
# req/s over 32 connections, h2c), one column per variant.
#
# Layout on a 2-core machine: the proxy under test is pinned to CPU 0; the load generator and the
# upstream (nginx returning a 12-byte body) share CPU 1. Every variant sees the same upstream.
#
# Usage: bench/proxy.sh            (DURATION=10 ROUNDS=5 MAX_DURATION=5 by default; e.g.
#                                   DURATION=5 ROUNDS=3 for a quick run; BENCH_VARIANTS picks and
#                                   orders the variants; bench/proxy-compare.sh adds a base proxy;
#                                   REGIMES_ONLY=1 runs just the regimes table, REGIMES=0 skips it)
# Needs: nginx, haproxy, wrk, h2load (nghttp2-client), python3, taskset; builds the release
# binaries with cargo first (OUTRIGGER_PROXY_BIN=path measures a given proxy binary instead).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

DURATION="${DURATION:-10}"
# Max req/s is the median of ROUNDS interleaved rounds (each variant once per round), so a slow
# spell of the shared machine hits every variant alike instead of one.
ROUNDS="${ROUNDS:-5}"
MAX_DURATION="${MAX_DURATION:-5}"
# The 1k req/s latency run is part of each round too: "added" latency is the variant minus
# direct from the same round (the machine's own latency drifts by more than a proxy adds).
LAT_DURATION="${LAT_DURATION:-5}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/proxy/results.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
BIN="${OUTRIGGER_PROXY_BIN:-$CARGO_TARGET_DIR/release/outrigger-proxy}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
# The paced generator of the regimes table's side-by-side rows (proxy/examples/paced_load.rs).
PACED_BIN="$CARGO_TARGET_DIR/release/examples/paced_load"
# The variant outrigger-proxy-base runs this binary (bench/proxy-compare.sh builds it from an
# older commit), so a before/after comparison shares one run's machine state.
BASE_BIN="${OUTRIGGER_PROXY_BASE_BIN:-}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"

require_tools bench/proxy.sh nginx haproxy wrk h2load python3 taskset
build_proxy_binaries
bench_start

fixed_rate() { # port rate-per-second logfile [warm-up [seconds]] -> prints succeeded count
  local port=$1 rate=$2 log=$3 warm=${4:-1} secs=${5:-$DURATION} clients rps
  if (( rate >= 5000 )); then clients=25; else clients=10; fi
  rps=$(( rate / clients ))
  local args=(--h1 -c "$clients" --rps "$rps" -D "$secs" --log-file "$log")
  # Latency runs skip the first second (connection setup); CPU runs count every request.
  if [[ "$warm" == 1 ]]; then args+=(--warm-up-time 1); fi
  taskset -c "$LOAD_CPU" h2load "${args[@]}" "http://127.0.0.1:$port/" >"$log.report" 2>&1 || true
  awk '/^requests:/ {print $8}' "$log.report"
}

CLK_TCK=$(getconf CLK_TCK)
declare -A MAXRPS MAXRANGE MAXRATIO MAXCPU P1K A1K P5K CPU RSS0 RSS1K
# hyper-floor: proxy/examples/hyper_floor.rs, hyper with none of the proxy's features (the
# stack's own cost).
# shellcheck disable=SC2206 # word splitting of the override is intended
VARIANTS=(${BENCH_VARIANTS:-direct outrigger-proxy hyper-floor nginx haproxy})

us_per_req() { # clock-ticks requests -> CPU µs per request
  awk -v d="$1" -v hz="$CLK_TCK" -v n="${2:-0}" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print 0 }'
}

main_table() {
  declare -A RUNS RATIOS ADD50 ADD99 USR SYS
  for r in $(seq 1 "$ROUNDS"); do
    declare -A ROUND=() LAT=()
    for v in "${VARIANTS[@]}"; do
      echo "== max req/s and latency at 1k req/s, round $r/$ROUNDS: $v" >&2
      start_variant "$v"
      taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
      [[ -n "$VPID" ]] && read -r u0 s0 <<<"$(cpu_split "$VPID")"
      out=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${MAX_DURATION}s" "http://127.0.0.1:$VPORT/")
      ROUND[$v]=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
      RUNS[$v]+="${ROUND[$v]:-0} "
      if [[ -n "$VPID" ]]; then
        # CPU per request at max rate, user and kernel apart (the kernel's share is loopback TCP).
        read -r u1 s1 <<<"$(cpu_split "$VPID")"
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        USR[$v]+="$(us_per_req $((u1 - u0)) "$n") "
        SYS[$v]+="$(us_per_req $((s1 - s0)) "$n") "
      fi
      fixed_rate "$VPORT" 1000 "$T/$v-1k-$r.log" 1 "$LAT_DURATION" >/dev/null
      LAT[$v]=$(percentiles "$T/$v-1k-$r.log")
      echo "   ${ROUND[$v]} req/s; at 1k req/s p50 p99 p99.9 (ms): ${LAT[$v]}" >&2
      stop_variant
    done
    read -r rd50 rd99 _ <<<"${LAT[direct]}"
    for v in "${VARIANTS[@]}"; do
      read -r r50 r99 _ <<<"${LAT[$v]}"
      ADD50[$v]+="$(awk -v a="$r50" -v b="$rd50" 'BEGIN { printf "%.4f", a - b }') "
      ADD99[$v]+="$(awk -v a="$r99" -v b="$rd99" 'BEGIN { printf "%.4f", a - b }') "
      RATIOS[$v]+="$(awk -v a="${ROUND[$v]:-0}" -v b="${ROUND[nginx]:-0}" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print 0 }') "
    done
  done
  for v in "${VARIANTS[@]}"; do
    MAXRPS[$v]=$(median_of "${RUNS[$v]}" "%d")
    MAXRANGE[$v]=$(tr ' ' '\n' <<<"${RUNS[$v]}" | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}')
    MAXRATIO[$v]=$(median_of "${RATIOS[$v]}" "%.2f")
    if [[ -n "${USR[$v]:-}" ]]; then
      MAXCPU[$v]="$(median_of "${USR[$v]}" "%.1f") / $(median_of "${SYS[$v]}" "%.1f")"
    else
      MAXCPU[$v]="-"
    fi
    cat "$T/$v"-1k-*.log >"$T/$v-1k.log"
    P1K[$v]=$(percentiles "$T/$v-1k.log")
    A1K[$v]="$(median_of "${ADD50[$v]}" "%+.3f") / $(median_of "${ADD99[$v]}" "%+.3f")"
  done

  for v in "${VARIANTS[@]}"; do
    echo "== $v" >&2
    start_variant "$v"
    # warm up, then idle RSS
    taskset -c "$LOAD_CPU" wrk -t1 -c4 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
    sleep 0.5
    if [[ -n "$VPID" ]]; then RSS0[$v]=$(rss_kib "$VPID"); else RSS0[$v]="-"; fi

    fixed_rate "$VPORT" 5000 "$T/$v-5k.log" >/dev/null
    P5K[$v]=$(percentiles "$T/$v-5k.log")

    # CPU per request: a separate 5k req/s run without warm-up, so every request is counted.
    if [[ -n "$VPID" ]]; then
      c0=$(cpu_ticks "$VPID")
      done5k=$(fixed_rate "$VPORT" 5000 "$T/$v-cpu.log" 0)
      c1=$(cpu_ticks "$VPID")
      CPU[$v]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${done5k:-0}" \
        'BEGIN { if (n > 0) printf "%.1f", d * 1000 / hz / (n / 1000); else print "-" }')
    else
      CPU[$v]="-"
    fi

    if [[ -n "$VPID" ]]; then
      coproc HOLD { taskset -c "$LOAD_CPU" python3 "$OUTRIGGER_ROOT/bench/proxy/hold_conns.py" 127.0.0.1 "$VPORT" 1000; }
      read -r ready_line <&"${HOLD[0]}" || true
      sleep 0.5
      RSS1K[$v]=$(rss_kib "$VPID")
      eval "exec ${HOLD[1]}>&-"
      wait "$HOLD_PID" 2>/dev/null || true
      [[ "$ready_line" == "ready 1000" ]] || RSS1K[$v]="failed"
    else
      RSS1K[$v]="-"
    fi
    stop_variant
  done

  added() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%+.3f", a - b }'; }

  read -r d5p50 d5p99 d5p999 <<<"${P5K[direct]}"
  {
    run_line
    echo "Tools: $(nginx -v 2>&1 | cut -d' ' -f3), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'), h2load $(h2load --version | awk '{print $2}'); outrigger-proxy $("$BIN" --version | awk '{print $2}') --workers 1, access log off"
    echo "Proxy pinned to CPU $PROXY_CPU; load generator + upstream (nginx, 12-byte body) on CPU $LOAD_CPU; HTTP/1.1 keep-alive; each of $ROUNDS interleaved rounds runs every variant for wrk -t1 -c64 -d${MAX_DURATION}s and h2load at 1k req/s for ${LAT_DURATION}s; max req/s: median (range) of the rounds, vs nginx: median of the per-round ratios; @1k percentiles over all rounds' requests, added @1k: median of the per-round differences to direct; @5k, CPU and RSS: one ${DURATION}s run per variant"
    echo
    echo "| variant | max req/s (wrk -c64), median (range) | vs nginx | CPU µs per req at max, user / kernel | p50 / p99 / p99.9 @1k (ms) | added p50 / p99 @1k (ms) | p50 / p99 / p99.9 @5k (ms) | added p99 @5k (ms) | CPU-ms per 1k req | RSS idle (MiB) | RSS 1k conns (MiB) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for v in "${VARIANTS[@]}"; do
      read -r a b c <<<"${P1K[$v]}"
      read -r e f g <<<"${P5K[$v]}"
      echo "| $v | ${MAXRPS[$v]} (${MAXRANGE[$v]}) | ${MAXRATIO[$v]} | ${MAXCPU[$v]} | $a / $b / $c | ${A1K[$v]} | $e / $f / $g | $(added "$f" "$d5p99") | ${CPU[$v]} | $(mib "${RSS0[$v]}") | $(mib "${RSS1K[$v]}") |"
    done
  } | tee "$OUT"
  : "${d5p50:=}" "${d5p999:=}"
}

# shellcheck source=bench/proxy-regimes.sh
source "$(dirname "$0")/proxy-regimes.sh"
if [[ "${REGIMES_ONLY:-0}" != 1 ]]; then main_table; fi
if [[ "${REGIMES:-1}" != 0 ]]; then regimes_table; fi
