#!/usr/bin/env bash
# Diagnosis (not a test): where outrigger-proxy's heap goes with 1,000 busy keep-alive
# connections. Runs BINARY under heaptrack (pinned to CPU 0; upstream nginx and wrk on CPU 1),
# warms it with wrk -c4 for 1 s, loads it with wrk -t1 -c1000 for 6 s, stops it, and prints
# heaptrack's peak memory consumers, each with the proxy's, hyper's and tokio's channel frames
# of its stack (the full report stays in OUT.txt). BINARY needs symbols: build it with
#   CARGO_PROFILE_IMAGE_LOCAL_STRIP=none CARGO_PROFILE_IMAGE_LOCAL_DEBUG=line-tables-only \
#     cargo build --profile image-local -p outrigger-proxy --bin outrigger-proxy
# (allocation sites and sizes are those of the release build; only LTO and codegen differ).
# Usage: bench/proxy-heaptrack.sh BINARY OUT   (writes OUT.zst and OUT.txt)
# Needs: heaptrack, heaptrack_print, nginx, wrk, taskset, python3.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

BIN=${1:?usage: bench/proxy-heaptrack.sh BINARY OUT}
OUT_BASE=${2:?usage: bench/proxy-heaptrack.sh BINARY OUT}
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
# shellcheck source=bench/proxy-variants.sh
source "$(dirname "$0")/proxy-variants.sh"
require_tools bench/proxy-heaptrack.sh heaptrack heaptrack_print nginx wrk taskset python3
bench_start

OUTRIGGER_ACCESS_LOG=false taskset -c "$PROXY_CPU" heaptrack -o "$OUT_BASE" "$BIN" \
  --inbound "127.0.0.1:$OR_PORT" --admin "127.0.0.1:$OR_ADMIN" --app "127.0.0.1:$UP_PORT" \
  --workers 1 --drain-timeout 1s >"$T/heaptrack.out" 2>&1 &
HT=$!
wait_port "$OR_PORT" 200
taskset -c "$LOAD_CPU" wrk -t1 -c4 -d1s "http://127.0.0.1:$OR_PORT/" >/dev/null 2>&1 || true
taskset -c "$LOAD_CPU" wrk -t1 -c1000 -d6s "http://127.0.0.1:$OR_PORT/" | grep -E 'Requests/sec|errors' >&2 || true
# heaptrack runs the proxy as its child: stop that (by its pid), so heaptrack writes its data
# and exits.
child=$(pgrep -P "$HT" -f "$BIN" | head -1 || true)
[[ -n "$child" ]] && kill -TERM "$child"
wait "$HT" || true

heaptrack_print -f "$OUT_BASE.zst" --print-peaks 1 --print-allocators 0 --print-temporary 0 \
  --print-leaks 0 --peak-limit 40 --sub-peak-limit 12 >"$OUT_BASE.txt" 2>/dev/null
python3 - "$OUT_BASE.txt" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
keep = ("proxy/src", "/hyper-1", "sync/mpsc")
i = 0
while i < len(lines):
    line = lines[i]
    if "consumed over" not in line:
        i += 1
        continue
    frames, j = [], i + 1
    while j < len(lines) and "consumed over" not in lines[j]:
        at = lines[j].strip()
        if at.startswith("at ") and any(k in at for k in keep):
            frames.append(f"{lines[j - 1].strip()} {at.split('/src/')[-1]}")
        j += 1
    size = line.split()[0]
    if size.endswith("M") or "peak memory" in line:
        print(line.strip())
        for f in frames[:4]:
            print("     ", f)
    i = j
PY
