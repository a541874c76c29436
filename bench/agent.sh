#!/usr/bin/env bash
# Benchmark (not a test): outrigger-agent from start to the last line acknowledged by a local
# Loki-compatible sink, agent pinned to one core. Prefills LINES CRI lines of LINE_BYTES bytes
# over PODS pods, then reports lines/s, MiB/s, CPU-seconds per GiB and peak RSS.
# Usage: bench/agent.sh   (env: LINES=1000000 PODS=20 LINE_BYTES=200 AGENT_CORE=0 SINK_CORE=1
#                          ENCODING=protobuf|json AGENT_ARGS="extra agent flags"
#                          AGENT_BIN=path: bench this agent binary instead of building this tree's;
#                          bench/agent-compare.sh uses it for same-run before/after ratios)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LINES="${LINES:-1000000}"
PODS="${PODS:-20}"
LINE_BYTES="${LINE_BYTES:-200}"
AGENT_CORE="${AGENT_CORE:-0}"
SINK_CORE="${SINK_CORE:-1}"
ENCODING="${ENCODING:-protobuf}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

echo "building release binaries (target dir $CARGO_TARGET_DIR)..." >&2
if [[ -n "${AGENT_BIN:-}" ]]; then
  cargo build --quiet --release -p outrigger-agent --example bench_sink
  AGENT="$AGENT_BIN"
else
  cargo build --quiet --release -p outrigger-agent --bin outrigger-agent --example bench_sink
  AGENT="$CARGO_TARGET_DIR/release/outrigger-agent"
fi
SINK="$CARGO_TARGET_DIR/release/examples/bench_sink"

WORK="$(mktemp -d /tmp/outrigger-agent-bench.XXXXXX)"
SINK_PID=""
AGENT_PID=""
cleanup() {
  if [[ -n "$AGENT_PID" ]]; then kill "$AGENT_PID" 2>/dev/null || true; fi
  if [[ -n "$SINK_PID" ]]; then kill "$SINK_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "prefilling $LINES lines of $LINE_BYTES bytes over $PODS pods..." >&2
python3 "$ROOT/bench/agent/gen.py" "$WORK/pods" "$LINES" "$PODS" "$LINE_BYTES"
TOTAL_LINES=$(( (LINES / PODS) * PODS ))
BYTES=$(find "$WORK/pods" -name '*.log' -printf '%s\n' | awk '{s+=$1} END {print s}')
sync

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SINK_PORT=$(port)
METRICS_PORT=$(port)
taskset -c "$SINK_CORE" "$SINK" "127.0.0.1:$SINK_PORT" "$TOTAL_LINES" "$WORK/done" &
SINK_PID=$!
sleep 0.3

read -r -a EXTRA <<<"${AGENT_ARGS:-}"
START_NS=$(date +%s%N)
taskset -c "$AGENT_CORE" "$AGENT" \
  --log-root "$WORK/pods" --state-dir "$WORK/state" \
  --loki-url "http://127.0.0.1:$SINK_PORT/loki/api/v1/push" --loki-encoding "$ENCODING" \
  --metrics "127.0.0.1:$METRICS_PORT" --kube-metadata off --node-name bench \
  --log warn "${EXTRA[@]}" 2>"$WORK/agent.log" &
AGENT_PID=$!

while [[ ! -s "$WORK/done" ]]; do
  if ! kill -0 "$AGENT_PID" 2>/dev/null; then echo "agent died:" >&2; cat "$WORK/agent.log" >&2; exit 1; fi
  sleep 0.02
done
END_NS=$(cat "$WORK/done")
CLK_TCK=$(getconf CLK_TCK)
read -r UTIME STIME < <(awk '{print $14, $15}' "/proc/$AGENT_PID/stat")
HWM_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$AGENT_PID/status")
read -r SUT SST < <(awk '{print $14, $15}' "/proc/$SINK_PID/stat")
# Time the agent's threads spent runnable but waiting for the (shared) core.
RUNQ_NS=$(cat /proc/"$AGENT_PID"/task/*/schedstat | awk '{s+=$2} END {print s}')
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=""

python3 - "$START_NS" "$END_NS" "$TOTAL_LINES" "$BYTES" "$UTIME" "$STIME" "$CLK_TCK" "$HWM_KB" "$ENCODING" "$SUT" "$SST" "$RUNQ_NS" <<'PY'
import sys, os, platform
start, end, lines, nbytes, ut, st, tck, hwm, enc, sut, sst, runq = sys.argv[1:]
secs = (int(end) - int(start)) / 1e9
lines, nbytes = int(lines), int(nbytes)
cpu = (int(ut) + int(st)) / int(tck)
mib = nbytes / 2**20
model = "unknown"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        model = l.split(":", 1)[1].strip(); break
print(f"| lines | bytes | encoding | wall s | lines/s | MiB/s | CPU-s | CPU-s/GiB | peak RSS MiB |")
print(f"|---|---|---|---|---|---|---|---|---|")
print(f"| {lines:,} | {nbytes:,} | {enc} | {secs:.2f} | {lines/secs:,.0f} | {mib/secs:.1f} | {cpu:.2f} | {cpu/(nbytes/2**30):.2f} | {int(hwm)/1024:.1f} |")
print(f"\nagent MiB per CPU-second: {mib/cpu:.1f}; agent threads waited {int(runq)/1e9:.2f} s for the core (run queue)")
print(f"\nsink (other core) CPU-s: {(int(sut) + int(sst)) / int(tck):.2f}; load average before run: {os.getloadavg()[0]:.2f}")
print(f"\nconditions: {os.cpu_count()} CPUs ({model}), agent pinned with taskset to one core, sink on another, files in page cache, kernel {platform.release()}")
PY
