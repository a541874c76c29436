#!/usr/bin/env bash
# Benchmark (not a test): this tree's outrigger-agent against the one at BASE_REV, in the same run,
# alternating (base, this, base, this, ...) so that machine load hits both alike; prints each run's
# row from bench/agent.sh and the median ratios this/base of lines/s and CPU-s per GiB.
# Usage: bench/agent-compare.sh BASE_REV [RUNS]   (env as bench/agent.sh; RUNS default 3)
# The base is built in a temporary git worktree with its own target dir ($BASE_TARGET, default
# target/bench-base), kept between runs so a second comparison does not rebuild it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE_REV=${1:?usage: bench/agent-compare.sh BASE_REV [RUNS]}
RUNS=${2:-3}
BASE_TARGET=${BASE_TARGET:-$ROOT/target/bench-base}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

WT=$(mktemp -d /tmp/outrigger-bench-base.XXXXXX)
OUT=$(mktemp -d /tmp/outrigger-bench-out.XXXXXX)
cleanup() {
  git -C "$ROOT" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
  rm -rf "$OUT"
}
trap cleanup EXIT
git -C "$ROOT" worktree add -q --detach "$WT" "$BASE_REV"
echo "building the base agent at $(git -C "$WT" rev-parse --short HEAD) (target dir $BASE_TARGET)..." >&2
(cd "$WT" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --quiet --release -p outrigger-agent --bin outrigger-agent)
echo "building this tree's agent..." >&2
(cd "$ROOT" && cargo build --quiet --release -p outrigger-agent --bin outrigger-agent)

for i in $(seq 1 "$RUNS"); do
  for which in base this; do
    bin="$CARGO_TARGET_DIR/release/outrigger-agent"
    [[ $which == base ]] && bin="$BASE_TARGET/release/outrigger-agent"
    echo "run $i: $which" >&2
    AGENT_BIN="$bin" "$ROOT/bench/agent.sh" | tee "$OUT/$which-$i.txt" | sed -n 3p
  done
done

python3 - "$OUT" "$RUNS" <<'PY'
import statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def row(which, i):
    # The third line of bench/agent.sh's table: | lines | bytes | enc | wall | lines/s | MiB/s | CPU-s | CPU-s/GiB | RSS |
    cells = [c.strip() for c in open(f"{out}/{which}-{i}.txt").read().splitlines()[2].strip("|").split("|")]
    return float(cells[4].replace(",", "")), float(cells[7]), float(cells[8])
base = [row("base", i) for i in range(1, runs + 1)]
this = [row("this", i) for i in range(1, runs + 1)]
med = lambda xs, k: statistics.median(x[k] for x in xs)
print(f"\nmedian of {runs} alternating runs    base       this     this/base")
for k, name in ((0, "lines/s"), (1, "CPU-s per GiB"), (2, "peak RSS MiB")):
    b, t = med(base, k), med(this, k)
    print(f"{name:<32}{b:>10,.2f} {t:>10,.2f}   {t / b:.3f}")
PY
