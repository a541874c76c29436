#!/usr/bin/env bash
# Benchmark (diagnosis, not a test): peak memory of outrigger-proxy builds with 1,000 busy
# keep-alive connections (issue 21's furthest-off row), several builds side by side in one run.
# Each of MEM_ROUNDS interleaved rounds starts every variant fresh, warms it with wrk -c4 for 1 s
# (idle = VmRSS then), holds 1,000 idle keep-alive connections that made one request each
# (bench/proxy/hold_conns.py, VmRSS 0.5 s after they are up, as in bench/proxy.sh's first
# table) and closes them, then runs wrk -t1 -c1000 for PEAK_SECS, samples VmRSS, RssAnon and the
# connections to the app 3 s in, and takes VmHWM at the end; the table has the median of the
# rounds per variant, and "per connection" = (busy RSS - idle RSS) / (1,000 + app connections).
# Layout as in bench/proxy.sh (proxy pinned to CPU 0; wrk and the upstream nginx on CPU 1).
#
# Usage: bench/proxy-memory.sh NAME=BINARY[,ARG...] ...   e.g.
#   bench/proxy-memory.sh base=/tmp/base/outrigger-proxy this=target/release/outrigger-proxy \
#     idle10s=target/release/outrigger-proxy,--idle-timeout,10s
# The name nginx (no binary) adds bench/proxy.sh's nginx proxy. Env: MEM_ROUNDS (5), PEAK_SECS
# (5), MEM_CONNS (1000), OUT (printed only unless set).
# Needs: nginx, wrk, taskset, ss, python3.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

MEM_ROUNDS="${MEM_ROUNDS:-5}"
PEAK_SECS="${PEAK_SECS:-5}"
MEM_CONNS="${MEM_CONNS:-1000}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
(( $# > 0 )) || { sed -n '2,16p' "$0" >&2; exit 1; }
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"
require_tools bench/proxy-memory.sh nginx wrk taskset ss python3

declare -A CMD IDLE HOLD1K BUSY ANON APP HWM
NAMES=()
for spec in "$@"; do
  name=${spec%%=*}
  NAMES+=("$name")
  [[ "$spec" == *=* ]] && CMD[$name]=${spec#*=}
done
bench_start

# start_mem NAME: a fresh process of NAME (VPID, VPORT).
start_mem() {
  if [[ "$1" == nginx ]]; then
    start_variant nginx
    return
  fi
  local args
  IFS=, read -r -a args <<<"${CMD[$1]}"
  OUTRIGGER_ACCESS_LOG=false taskset -c "$PROXY_CPU" "${args[@]}" --inbound "127.0.0.1:$OR_PORT" \
    --admin "127.0.0.1:$OR_ADMIN" --app "127.0.0.1:$UP_PORT" --workers 1 >"$T/mem.out" 2>"$T/mem.err" &
  VPID=$! VPORT=$OR_PORT
  PIDS+=("$VPID")
  wait_port "$VPORT"
  sleep 0.3
}

for r in $(seq 1 "$MEM_ROUNDS"); do
  for v in "${NAMES[@]}"; do
    start_mem "$v"
    taskset -c "$LOAD_CPU" wrk -t1 -c4 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
    sleep 0.5
    idle=$(rss_kib "$VPID")
    coproc HOLD { taskset -c "$LOAD_CPU" python3 "$OUTRIGGER_ROOT/bench/proxy/hold_conns.py" 127.0.0.1 "$VPORT" 1000; }
    read -r ready_line <&"${HOLD[0]}" || true
    sleep 0.5
    held=$(rss_kib "$VPID")
    eval "exec ${HOLD[1]}>&-"
    wait "$HOLD_PID" 2>/dev/null || true
    [[ "$ready_line" == "ready 1000" ]] || held=0
    sleep 0.5
    taskset -c "$LOAD_CPU" wrk -t1 -c"$MEM_CONNS" -d"${PEAK_SECS}s" "http://127.0.0.1:$VPORT/" >"$T/wrk.out" 2>&1 &
    wrk_pid=$!
    sleep 3
    busy=$(rss_kib "$VPID") anon=$(status_kib "$VPID" RssAnon)
    app=$(ss -tnH state established "( dport = :$UP_PORT )" | wc -l)
    wait "$wrk_pid" || true
    hwm=$(status_kib "$VPID" VmHWM)
    stop_variant
    IDLE[$v]+="$idle " HOLD1K[$v]+="$held " BUSY[$v]+="$busy " ANON[$v]+="$anon " APP[$v]+="$app " HWM[$v]+="$hwm "
    echo "round $r/$MEM_ROUNDS $v: idle $(mib "$idle") 1k idle conns $(mib "$held") busy $(mib "$busy") (anon $(mib "$anon")) hwm $(mib "$hwm") MiB, app conns $app; $(grep -E 'Requests/sec|Non-2xx|errors' "$T/wrk.out" | tr -s ' ' | tr '\n' ';')" >&2
  done
done

{
  echo "$(run_line); commit $(git -C "$OUTRIGGER_ROOT" rev-parse --short HEAD)"
  echo "Proxy pinned to CPU $PROXY_CPU; wrk + upstream (nginx, 12-byte body) on CPU $LOAD_CPU; $MEM_ROUNDS interleaved rounds, a fresh process per variant per round; idle = VmRSS after wrk -c4 -d1s; 1,000 idle connections: VmRSS 0.5 s after hold_conns.py has them up (one request each); busy = VmRSS (RssAnon) 3 s into wrk -t1 -c$MEM_CONNS -d${PEAK_SECS}s, app connections counted with ss then; VmHWM after it; medians of the rounds"
  echo
  echo "| variant | idle RSS (MiB) | RSS, 1,000 idle keep-alive connections (MiB) | busy RSS (RssAnon) (MiB) | VmHWM (MiB) | app connections | KiB per connection (inbound + app) | VmHWM per round (MiB) |"
  echo "|---|---|---|---|---|---|---|---|"
  for v in "${NAMES[@]}"; do
    i=$(median_of "${IDLE[$v]}" "%d") b=$(median_of "${BUSY[$v]}" "%d") a=$(median_of "${APP[$v]}" "%d")
    per=$(awk -v d=$((b - i)) -v n=$((MEM_CONNS + a)) 'BEGIN { printf "%.1f", d / n }')
    rounds=$(for h in ${HWM[$v]}; do printf '%s ' "$(mib "$h")"; done)
    echo "| $v | $(mib "$i") | $(mib "$(median_of "${HOLD1K[$v]}" "%d")") | $(mib "$b") ($(mib "$(median_of "${ANON[$v]}" "%d")")) | $(mib "$(median_of "${HWM[$v]}" "%d")") | $a | $per | ${rounds% } |"
  done
} | tee "${OUT:-/dev/null}"
