#!/usr/bin/env bash
# Benchmark (not a timed test): outrigger-proxy gateway vs nginx vs HAProxy as one-core HTTP/1.1
# load balancers over the same 4 upstream processes on loopback (4 one-worker nginx instances,
# 12-byte body), configured alike: keep-alive pools to every upstream, nginx and HAProxy round
# robin, the gateway its power-of-two-choices balancer (a --routes-file table with one backend of
# 4 endpoints). In one run, with ROUNDS interleaved rounds (each variant once per round, so a
# slow spell of the shared machine hits all alike): max req/s (wrk -t1 -c64), p50/p99 at a fixed
# 1k req/s (h2load) and the p50 added over going straight to one upstream in the same round,
# CPU-ms per 1,000 requests (from /proc during the 1k req/s run), RSS after the run.
# Prints a markdown table and the gateway's ratios to nginx and HAProxy (written to $OUT,
# default bench/gateway/results.md).
#
# Layout on a 2-core machine: the balancer under test on CPU 0 (PROXY_CPU); the load generator
# and the 4 upstreams share CPU 1 (LOAD_CPU).
# Usage: bench/gateway.sh   (ROUNDS=5 MAX_DURATION=5 LAT_DURATION=5 by default; run it under
#        flock /tmp/outrigger-bench.lock; OUTRIGGER_PROXY_BIN=path measures a given binary)
# Needs: nginx, haproxy, wrk, h2load, python3, taskset; builds the release binary first.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# The process-tree, CPU, RSS and percentile helpers of bench/proxy.sh.
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
MAX_DURATION="${MAX_DURATION:-5}"
LAT_DURATION="${LAT_DURATION:-5}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/gateway/results.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
BIN="${OUTRIGGER_PROXY_BIN:-$CARGO_TARGET_DIR/release/outrigger-proxy}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
UPSTREAMS=(18471 18472 18473 18474)
GW_PORT=18460 GW_ADMIN=18461 GNG_PORT=18462 GHA_PORT=18463
VARIANTS=(direct outrigger-gateway nginx haproxy)

require_tools bench/gateway.sh nginx haproxy wrk h2load python3 taskset
build_proxy_binaries
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
T="$(mktemp -d)"
trap bench_cleanup EXIT

for port in "${UPSTREAMS[@]}"; do
  start_hello_nginx "$T/up$port" "$port"
done

endpoints=$(printf '{"address":"127.0.0.1:%s"},' "${UPSTREAMS[@]}")
cat >"$T/routes.json" <<JSON
{"ports":[{"port":$GW_PORT,"listeners":[{"name":"bench/gw/http","virtualHosts":[{"rules":[
  {"route":"bench/all","backends":[{"service":"bench/app:80"}]}]}]}]}],
 "backends":[{"service":"bench/app:80","endpoints":[${endpoints%,}]}]}
JSON
mkdir -p "$T/ng"
{
  nginx_head "$T/ng"
  echo "  upstream app {"
  printf '    server 127.0.0.1:%s;\n' "${UPSTREAMS[@]}"
  cat <<CONF
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$GNG_PORT backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
} >"$T/ng/nginx.conf"
{
  haproxy_head "127.0.0.1:$GHA_PORT"
  echo "  balance roundrobin"
  for port in "${UPSTREAMS[@]}"; do echo "  server up$port 127.0.0.1:$port"; done
} >"$T/haproxy.cfg"

start_balancer() { # NAME: sets VPID (empty for direct) and VPORT
  case "$1" in
    direct) VPID="" VPORT=${UPSTREAMS[0]} ;;
    outrigger-gateway)
      OUTRIGGER_ACCESS_LOG=false taskset -c "$PROXY_CPU" "$BIN" gateway --bind-address 127.0.0.1 \
        --admin "127.0.0.1:$GW_ADMIN" --routes-file "$T/routes.json" --workers 1 \
        >"$T/gw.out" 2>"$T/gw.err" &
      VPID=$! VPORT=$GW_PORT ;;
    nginx)
      taskset -c "$PROXY_CPU" nginx -p "$T/ng" -e "$T/ng/error.log" -c "$T/ng/nginx.conf" &
      VPID=$! VPORT=$GNG_PORT ;;
    haproxy)
      taskset -c "$PROXY_CPU" haproxy -db -f "$T/haproxy.cfg" >"$T/ha.log" 2>&1 &
      VPID=$! VPORT=$GHA_PORT ;;
  esac
  [[ -n "$VPID" ]] && PIDS+=("$VPID")
  wait_port "$VPORT"
  sleep 0.3
}

rate_1k() { # port logfile -> prints the requests that succeeded (10 clients, 100 req/s each)
  taskset -c "$LOAD_CPU" h2load --h1 -c 10 --rps 100 -D "$LAT_DURATION" --warm-up-time 1 \
    --log-file "$2" "http://127.0.0.1:$1/" >"$2.report" 2>&1 || true
  awk '/^requests:/ {print $8}' "$2.report"
}

declare -A RUNS P50 P99 ADD50 CPU RSS
for r in $(seq 1 "$ROUNDS"); do
  declare -A ROUND_P50=()
  for v in "${VARIANTS[@]}"; do
    echo "== round $r/$ROUNDS: $v" >&2
    start_balancer "$v"
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${MAX_DURATION}s" "http://127.0.0.1:$VPORT/")
    rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5} /Socket errors:/ {print "socket"}' <<<"$out")
    [[ -z "$errors" ]] || echo "   $v: errors in the wrk run: $errors" >&2
    RUNS[$v]+="$rps "
    # schedstat CPU time: exact, where utime+stime come in 10 ms ticks.
    [[ -n "$VPID" ]] && c0=$(cpu_ns "$VPID")
    n=$(rate_1k "$VPORT" "$T/$v-$r.log")
    if [[ -n "$VPID" ]]; then
      c1=$(cpu_ns "$VPID")
      CPU[$v]+="$(awk -v d=$((c1 - c0)) -v n="${n:-0}" \
        'BEGIN { if (n > 0) printf "%.2f", d / 1e6 / (n / 1000); else print 0 }') "
      RSS[$v]+="$(rss_kib "$VPID") "
    fi
    read -r p50 p99 _ <<<"$(percentiles "$T/$v-$r.log")"
    ROUND_P50[$v]=$p50 P50[$v]+="$p50 " P99[$v]+="$p99 "
    echo "   $rps req/s; p50 $p50 ms, p99 $p99 ms at 1k req/s" >&2
    stop_variant
  done
  for v in "${VARIANTS[@]}"; do
    ADD50[$v]+="$(awk -v a="${ROUND_P50[$v]}" -v b="${ROUND_P50[direct]}" 'BEGIN { printf "%.4f", a - b }') "
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
declare -A MAX MADD MCPU MRSS
for v in "${VARIANTS[@]}"; do
  MAX[$v]=$(median_of "${RUNS[$v]}" "%d")
  MADD[$v]=$(median_of "${ADD50[$v]}" "%+.3f")
  MCPU[$v]=$(median_of "${CPU[$v]:-}" "%.1f")
  MRSS[$v]=$(median_of "${RSS[$v]:-}" "%d")
done
mkdir -p "$(dirname "$OUT")"
{
  run_line
  echo "Tools: $(nginx -v 2>&1 | cut -d' ' -f3), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'), h2load $(h2load --version | awk '{print $2}'); outrigger-proxy $("$BIN" --version | awk '{print $2}') gateway --workers 1, access log off"
  echo "Balancer on CPU $PROXY_CPU; wrk/h2load and 4 upstream nginx (1 worker each) on CPU $LOAD_CPU; HTTP/1.1 keep-alive; $ROUNDS interleaved rounds of wrk -t1 -c64 -d${MAX_DURATION}s and h2load at 1k req/s for ${LAT_DURATION}s; medians over the rounds; added p50: per-round difference to direct (one upstream, no balancer)"
  echo
  echo "| variant | max req/s (wrk -c64) | p50 / p99 @1k (ms) | added p50 @1k (ms) | CPU-ms per 1k req @1k | RSS after the run (MiB) |"
  echo "|---|---|---|---|---|---|"
  for v in "${VARIANTS[@]}"; do
    echo "| $v | ${MAX[$v]} | $(median_of "${P50[$v]}" "%.3f") / $(median_of "${P99[$v]}" "%.3f") | ${MADD[$v]} | ${MCPU[$v]} | $(mib "${MRSS[$v]}") |"
  done
  echo
  g=outrigger-gateway
  for other in nginx haproxy; do
    echo "- gateway / $other: max req/s $(ratio "${MAX[$g]}" "${MAX[$other]}"), CPU per 1k req $(ratio "${MCPU[$g]}" "${MCPU[$other]}"), RSS $(ratio "${MRSS[$g]}" "${MRSS[$other]}"), added p50 ${MADD[$g]} vs ${MADD[$other]} ms"
  done
} | tee "$OUT"
