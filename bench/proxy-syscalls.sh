#!/usr/bin/env bash
# Benchmark: what one small loopback TCP write costs in the kernel by the syscall that makes it,
# `writev` (tokio's vectored write, hyper's default for a head plus body) or `send` (a plain
# write). outrigger-proxy's socket wrapper (proxy/src/coalesce.rs) joins small multi-buffer
# writes and sends them with `send`; this measures why, outside the proxy, with nothing else
# varying: proxy/examples/socket_writes.rs writes a 150-byte head and a 12-byte body to a
# loopback socket and reads them on the other end, per mode, modes alternating per round.
#
# Usage: bench/proxy-syscalls.sh      (ROUNDS=5 WRITES=200000 by default; ~30 seconds)
# Needs: taskset; builds the socket_writes example first.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../scripts/lib/env.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
WRITES="${WRITES:-200000}"
OUT="${OUT:-$OUTRIGGER_ROOT/bench/proxy/syscalls.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUTRIGGER_ROOT/target}"
PROXY_CPU="${PROXY_CPU:-0}"

require_tools bench/proxy-syscalls.sh taskset
(cd "$OUTRIGGER_ROOT" && cargo build --release -p outrigger-proxy --example socket_writes >&2)

T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
{
  echo "$(run_line); $WRITES writes per mode and round, writer and reader on CPU $PROXY_CPU"
  echo
  taskset -c "$PROXY_CPU" "$CARGO_TARGET_DIR/release/examples/socket_writes" "$ROUNDS" "$WRITES"
} >"$T/table.md"
cat "$T/table.md"
cp "$T/table.md" "$OUT"
