#!/usr/bin/env bash
# Benchmark: user-space instructions and cache-line misses per proxied request, counted by
# valgrind (callgrind with its cache simulation), for outrigger-proxy, hyper-floor
# (proxy/examples/hyper_floor.rs) and nginx as HTTP/1.1 reverse proxies in front of the same
# upstream. Unlike req/s on a shared VM, the counts are exact and repeatable (the same binary
# gives the same figures to a few tenths of a per cent), so they show what a code change costs or
# saves. The misses are the process's memory footprint per request (distinct cache lines of code
# and data it touches that were not already in L1): they cost the process time, and they also
# evict the kernel's lines, so a larger footprint shows up as kernel time in bench/proxy.sh
# (bench/proxy-footprint.sh measures that effect). Kernel time itself is not counted here.
#
# Each variant runs twice under callgrind, serving N1 and then N2 requests (h2load --h1, CONNS
# keep-alive connections, 12-byte responses); per request = (count(N2) - count(N1)) / (N2 - N1),
# which cancels start-up and shutdown. The simulated caches are fixed (32 KiB 8-way L1i, 48 KiB
# 12-way L1d, 1 MiB 8-way last level: this VM's AMD EPYC per core) so the figures do not depend on
# the machine. Prints a markdown table, also written to $OUT (default bench/proxy/instructions.md).
#
# Usage: bench/proxy-instructions.sh      (N1=2000 N2=12000 CONNS=16 by default; ~2 minutes)
# Needs: valgrind, nginx, h2load; builds the release binaries first (OUTRIGGER_PROXY_BIN=path
# measures a given proxy binary instead).
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

N1="${N1:-2000}"
N2="${N2:-12000}"
CONNS="${CONNS:-16}"
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


mkdir -p "$T/up" "$T/ng"
nginx_conf "$T/up" "$UP_PORT" "$UP_PORT" 'default_type text/plain; return 200 "hello world\n";' \
  >"$T/up/nginx.conf"
# shellcheck disable=SC2016 # $proxy_add_x_forwarded_for is nginx's variable, not the shell's
nginx_conf "$T/ng" "$PX_PORT" "$UP_PORT" 'proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;' \
  >"$T/ng/nginx.conf"
nginx -p "$T/up" -e "$T/up/error.log" -c "$T/up/nginx.conf" &
UP_PID=$!
wait_port "$UP_PORT"

# Runs variant $1 under callgrind for $2 requests; prints its instructions, L1 instruction-cache
# misses and L1 data-cache misses (reads + writes).
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
  OUTRIGGER_ACCESS_LOG=false valgrind --tool=callgrind --cache-sim=yes \
    --I1=32768,8,64 --D1=49152,12,64 --LL=1048576,8,64 --callgrind-out-file="$out" "${cmd[@]}" \
    >/dev/null 2>"$T/valgrind.err" &
  local pid=$!
  wait_port "$PX_PORT" 400
  h2load --h1 -n "$2" -c "$CONNS" "http://127.0.0.1:$PX_PORT/" >"$T/h2load.out"
  if ! grep -q "succeeded, 0 failed" "$T/h2load.out"; then
    echo "$1: requests failed:" >&2
    cat "$T/h2load.out" >&2
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  # summary: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  awk '/^summary:/ {print $2, $5, $6 + $7}' "$out"
}

COMMIT="$(git -C "$OUTRIGGER_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), commit \`$COMMIT\`, $(valgrind --version), $(nginx -v 2>&1 | sed 's/.*: //'), $CONNS connections"
  echo
  echo "| variant | instructions per request | vs nginx | vs hyper-floor | L1i misses per request | L1d misses per request |"
  echo "|---|---|---|---|---|---|"
} >"$T/table.md"
declare -A IR I1 D1
for v in outrigger-proxy hyper-floor nginx; do
  read -r ir1 i11 d11 < <(instructions "$v" "$N1")
  read -r ir2 i12 d12 < <(instructions "$v" "$N2")
  IR[$v]=$(((ir2 - ir1) / (N2 - N1)))
  I1[$v]=$(((i12 - i11) / (N2 - N1)))
  D1[$v]=$(((d12 - d11) / (N2 - N1)))
  echo "$v: ${IR[$v]} instructions, ${I1[$v]} L1i and ${D1[$v]} L1d misses per request" >&2
done
for v in outrigger-proxy hyper-floor nginx; do
  awk -v v="$v" -v n="${IR[$v]}" -v ng="${IR[nginx]}" -v fl="${IR[hyper-floor]}" \
    -v i="${I1[$v]}" -v d="${D1[$v]}" \
    'BEGIN { printf "| %s | %d | %.2f | %.2f | %d | %d |\n", v, n, n / ng, n / fl, i, d }' >>"$T/table.md"
done
cat "$T/table.md"
cp "$T/table.md" "$OUT"
