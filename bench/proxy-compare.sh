#!/usr/bin/env bash
# Benchmark (not a test): this tree's outrigger-proxy against the one at BASE_REV in the same
# bench/proxy.sh run (interleaved rounds, so machine load hits both alike), then prints the
# ratios this/base of every figure that both rows have.
# Usage: bench/proxy-compare.sh BASE_REV   (env as bench/proxy.sh; BENCH_VARIANTS defaults to
#        "direct outrigger-proxy-base outrigger-proxy nginx")
# The base is built in a temporary git worktree with its own target dir ($BASE_TARGET, default
# target/bench-base), kept between runs so a second comparison does not rebuild it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE_REV=${1:?usage: bench/proxy-compare.sh BASE_REV}
BASE_TARGET=${BASE_TARGET:-$ROOT/target/bench-base}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

WT=$(mktemp -d /tmp/outrigger-bench-base.XXXXXX)
OUT_DIR=$(mktemp -d /tmp/outrigger-bench-out.XXXXXX)
cleanup() {
  git -C "$ROOT" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
  rm -rf "$OUT_DIR"
}
trap cleanup EXIT
git -C "$ROOT" worktree add -q --detach "$WT" "$BASE_REV"
echo "building the base proxy at $(git -C "$WT" rev-parse --short HEAD) (target dir $BASE_TARGET)..." >&2
(cd "$WT" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --quiet --release -p outrigger-proxy --bin outrigger-proxy)

export OUTRIGGER_PROXY_BASE_BIN="$BASE_TARGET/release/outrigger-proxy"
export BENCH_VARIANTS="${BENCH_VARIANTS:-direct outrigger-proxy-base outrigger-proxy nginx}"
export OUT="${OUT:-$OUT_DIR/results.md}"
export OUT_REGIMES="${OUT_REGIMES:-$OUT_DIR/regimes.md}"
"$ROOT/bench/proxy.sh"

# Ratios this/base, column by column: numbers only (the "a / b / c" cells split into their parts).
# The first table has a row per variant, the regimes table (if it ran) a column per variant.
python3 - "$OUT" "$OUT_REGIMES" "$BASE_REV" <<'PY'
import os, re, sys
path, regimes_path, base_rev = sys.argv[1:4]
num = re.compile(r"[-+]?\d+(?:\.\d+)?")


def table(p):
    if not os.path.exists(p):
        return []
    return [[c.strip() for c in l.strip().strip("|").split("|")] for l in open(p) if l.startswith("|")]


def ratio_line(name, b, t, differences):
    bs, ts = num.findall(b.split("(")[0]), num.findall(t.split("(")[0])
    if not bs or len(bs) != len(ts):
        return
    if differences:  # a difference to direct: compare the differences, not their ratio
        print(f"- {name}: base {b}, this {t}")
        return
    ratios = [f"{float(y) / float(x):.2f}" if float(x) != 0 else "-" for x, y in zip(bs, ts)]
    print(f"- {name}: {' / '.join(ratios)}  (base {b}, this {t})")


rows = table(path)
if rows:
    head = rows[0]
    cells = {r[0]: r for r in rows[2:]}
    base, this = cells.get("outrigger-proxy-base"), cells.get("outrigger-proxy")
    if not base or not this:
        sys.exit("proxy-compare: both outrigger-proxy and outrigger-proxy-base rows are needed")
    print(f"\nratios this / base ({base_rev}), per figure (below 1 is lower: better for latency, CPU, RSS; worse for req/s):")
    for name, b, t in zip(head[1:], base[1:], this[1:]):
        if not name.startswith("added"):
            ratio_line(name, b, t, False)
rows = table(regimes_path)
if rows:
    head = rows[0]
    if "outrigger-proxy-base" in head and "outrigger-proxy" in head:
        ib, it = head.index("outrigger-proxy-base"), head.index("outrigger-proxy")
        print(f"\nregimes, this / base ({base_rev}):")
        for r in rows[2:]:
            ratio_line(r[0], r[ib], r[it], r[0].startswith("added"))
PY
