#!/usr/bin/env bash
# Benchmark: user-space instructions per request of the gateway (`outrigger-proxy gateway`, a
# --routes-file table with one rule and one endpoint) and of the sidecar (`--app` the same
# upstream), counted by valgrind's callgrind as bench/proxy-instructions.sh counts them: exact and
# repeatable on a busy machine, so the difference is what routing and balancing cost per request.
# Each runs twice, serving N1 then N2 requests (h2load --h1, CONNS keep-alive connections, the
# upstream a one-worker nginx with a 12-byte body); per request = (count(N2) - count(N1)) /
# (N2 - N1), which cancels start-up and shutdown.
# Usage: bench/gateway-instructions.sh   (N1=2000 N2=12000 CONNS=16; run it under
#        flock /tmp/outrigger-bench.lock; OUTRIGGER_PROXY_BIN=path measures a given binary)
# Needs: valgrind, nginx, h2load; builds the release binary first.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"
set -euo pipefail

N1="${N1:-2000}"
N2="${N2:-12000}"
CONNS="${CONNS:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
BIN="${OUTRIGGER_PROXY_BIN:-$CARGO_TARGET_DIR/release/outrigger-proxy}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
UP=18591 GW=18592 GW_ADMIN=18593 SC=18594 SC_ADMIN=18595

require_tools bench/gateway-instructions.sh valgrind nginx h2load
build_proxy_binaries
T="$(mktemp -d)"
trap bench_cleanup EXIT
mkdir -p "$T/up"
{
  nginx_head "$T/up"
  cat <<CONF
  server {
    listen 127.0.0.1:$UP;
    location / { default_type text/plain; return 200 "hello world\n"; }
  }
}
CONF
} >"$T/up/nginx.conf"
nginx -p "$T/up" -e "$T/up/error.log" -c "$T/up/nginx.conf" &
PIDS+=($!)
wait_port "$UP"
cat >"$T/routes.json" <<JSON
{"ports":[{"port":$GW,"listeners":[{"name":"bench/gw/http","virtualHosts":[{"rules":[
  {"route":"bench/all","backends":[{"service":"bench/app:80"}]}]}]}]}],
 "backends":[{"service":"bench/app:80","endpoints":[{"address":"127.0.0.1:$UP"}]}]}
JSON

count() { # gateway|sidecar N -> instructions of the whole run
  local out="$T/callgrind.out" port cmd
  case "$1" in
    gateway)
      port=$GW
      cmd=("$BIN" gateway --bind-address 127.0.0.1 --admin "127.0.0.1:$GW_ADMIN"
        --routes-file "$T/routes.json" --workers 1 --drain-delay 0s) ;;
    sidecar)
      port=$SC
      cmd=("$BIN" --inbound "127.0.0.1:$SC" --admin "127.0.0.1:$SC_ADMIN" --app "127.0.0.1:$UP"
        --workers 1 --drain-delay 0s) ;;
  esac
  rm -f "$out"
  OUTRIGGER_ACCESS_LOG=false valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" \
    >/dev/null 2>"$T/valgrind.err" &
  local pid=$!
  wait_port "$port" 400
  h2load --h1 -n "$2" -c "$CONNS" "http://127.0.0.1:$port/" >"$T/h2load.out"
  grep -q "succeeded, 0 failed" "$T/h2load.out" || { echo "$1: requests failed" >&2; cat "$T/h2load.out" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^summary:/ {print $2}' "$out"
}

declare -A IR
for v in gateway sidecar; do
  a=$(count "$v" "$N1")
  b=$(count "$v" "$N2")
  IR[$v]=$(((b - a) / (N2 - N1)))
done
echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$OUTRIGGER_ROOT" rev-parse --short HEAD), $(valgrind --version), $CONNS connections"
echo "| variant | instructions per request |"
echo "|---|---|"
for v in gateway sidecar; do echo "| $v | ${IR[$v]} |"; done
awk -v g="${IR[gateway]}" -v s="${IR[sidecar]}" 'BEGIN { printf "gateway / sidecar: %.3f (%+d per request)\n", g / s, g - s }'
