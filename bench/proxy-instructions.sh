#!/usr/bin/env bash
# Benchmark: user-space instructions per proxied request, counted by valgrind (callgrind), for
# outrigger-proxy, hyper-floor (proxy/examples/hyper_floor.rs) and nginx as HTTP/1.1 reverse
# proxies in front of the same upstream. Unlike req/s on a shared VM, the count is exact and
# repeatable (the same binary gives the same figure to a few tenths of a per cent), so it shows
# what a code change costs or saves; it leaves out kernel time and cache effects, which
# bench/proxy.sh measures.
#
# Each variant runs twice under callgrind, serving N1 and then N2 requests (h2load --h1, 16
# keep-alive connections, 12-byte responses); per request = (Ir(N2) - Ir(N1)) / (N2 - N1), which
# cancels start-up and shutdown. Prints a markdown table, also written to $OUT (default
# bench/proxy/instructions.md).
#
# Usage: bench/proxy-instructions.sh      (N1=2000 N2=12000 by default; ~1 minute)
# Needs: valgrind, nginx, h2load; builds the release binaries first (OUTRIGGER_PROXY_BIN=path
# measures a given proxy binary instead).
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

N1="${N1:-2000}"
N2="${N2:-12000}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/proxy/instructions.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
BIN="${OUTRIGGER_PROXY_BIN:-$CARGO_TARGET_DIR/release/outrigger-proxy}"
FLOOR_BIN="$CARGO_TARGET_DIR/release/examples/hyper_floor"
UP_PORT=18181 PX_PORT=18182 PX_ADMIN=18183

require_tools bench/proxy-instructions.sh valgrind nginx h2load
build_proxy_binaries

T="$(mktemp -d)"
UP_PID=""
cleanup() {
  [[ -n "$UP_PID" ]] && kill "$UP_PID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT


nginx_conf() { # dir listen-port location-body
  cat <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
  uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / { $3 }
  }
}
EOF
}

mkdir -p "$T/up" "$T/ng"
nginx_conf "$T/up" "$UP_PORT" 'default_type text/plain; return 200 "hello world\n";' >"$T/up/nginx.conf"
# shellcheck disable=SC2016 # $proxy_add_x_forwarded_for is nginx's variable, not the shell's
nginx_conf "$T/ng" "$PX_PORT" 'proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;' \
  >"$T/ng/nginx.conf"
nginx -p "$T/up" -e "$T/up/error.log" -c "$T/up/nginx.conf" &
UP_PID=$!
wait_port "$UP_PORT"

# Runs variant $1 under callgrind for $2 requests; prints the instructions it executed.
instructions() {
  local out="$T/callgrind.out" cmd
  case "$1" in
    outrigger-proxy)
      cmd=("$BIN" --inbound "127.0.0.1:$PX_PORT" --admin "127.0.0.1:$PX_ADMIN"
        --app "127.0.0.1:$UP_PORT" --workers 1 --drain-delay 0s) ;;
    hyper-floor) cmd=("$FLOOR_BIN" "127.0.0.1:$PX_PORT" "127.0.0.1:$UP_PORT") ;;
    nginx) cmd=(nginx -p "$T/ng" -e "$T/ng/error.log" -c "$T/ng/nginx.conf") ;;
  esac
  rm -f "$out"
  OUTRIGGER_ACCESS_LOG=false valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" \
    >/dev/null 2>"$T/valgrind.err" &
  local pid=$!
  wait_port "$PX_PORT" 400
  h2load --h1 -n "$2" -c 16 "http://127.0.0.1:$PX_PORT/" >"$T/h2load.out"
  if ! grep -q "succeeded, 0 failed" "$T/h2load.out"; then
    echo "$1: requests failed:" >&2
    cat "$T/h2load.out" >&2
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^summary:/ {print $2}' "$out"
}

COMMIT="$(git -C "$OUTRIGGER_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), commit \`$COMMIT\`, $(valgrind --version), $(nginx -v 2>&1 | sed 's/.*: //')"
  echo
  echo "| variant | instructions per request | vs nginx | vs hyper-floor |"
  echo "|---|---|---|---|"
} >"$T/table.md"
declare -A PER
for v in outrigger-proxy hyper-floor nginx; do
  a="$(instructions "$v" "$N1")"
  b="$(instructions "$v" "$N2")"
  PER[$v]=$(((b - a) / (N2 - N1)))
  echo "$v: ${PER[$v]} instructions per request" >&2
done
for v in outrigger-proxy hyper-floor nginx; do
  awk -v v="$v" -v n="${PER[$v]}" -v ng="${PER[nginx]}" -v fl="${PER[hyper-floor]}" \
    'BEGIN { printf "| %s | %d | %.2f | %.2f |\n", v, n, n / ng, n / fl }' >>"$T/table.md"
done
cat "$T/table.md"
cp "$T/table.md" "$OUT"
