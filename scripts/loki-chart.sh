#!/usr/bin/env bash
# Loki's Helm chart for the local node, packaged from the Loki Go module the toolchain keeps in the
# module cache (scripts/tools.sh loki): production/helm/loki of github.com/grafana/loki/v3 at
# LOKI_VERSION (tools/versions.sh) is chart LOKI_CHART_VERSION. Its three optional subcharts (minio,
# grafana-agent-operator, rollout-operator) live in remote Helm repositories that cannot be reached
# offline, and the local values switch all three off, so the copy drops them from Chart.yaml (and
# Chart.lock) instead of vendoring them; `helm package` then needs no repository at all.
#
# usage: scripts/loki-chart.sh OUT_DIR     writes OUT_DIR/loki-LOKI_CHART_VERSION.tgz, prints its path
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

out=${1:?usage: scripts/loki-chart.sh OUT_DIR}
command -v helm >/dev/null || { echo "loki-chart.sh: helm not installed (scripts/tools.sh go)" >&2; exit 1; }
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || { echo "loki-chart.sh: go not installed" >&2; exit 1; }
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The module's directory in the Go module cache, never from the network (GOPROXY=off).
mod=github.com/grafana/loki/v3@$LOKI_VERSION
dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off go mod download -json "$mod" 2>/dev/null |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
src=$dir/production/helm/loki
[[ -n "$dir" && -f "$src/Chart.yaml" ]] ||
  { echo "loki-chart.sh: $mod is not in the Go module cache; run scripts/tools.sh loki" >&2; exit 1; }
version=$(sed -n 's/^version: *//p' "$src/Chart.yaml" | tr -d '"')
[[ "$version" == "$LOKI_CHART_VERSION" ]] ||
  { echo "loki-chart.sh: $mod carries chart $version, tools/versions.sh says LOKI_CHART_VERSION=$LOKI_CHART_VERSION" >&2; exit 1; }

cp -r "$src" "$work/loki"
# The module cache is read-only; the copy must be writable for the edits below.
chmod -R u+w "$work/loki"
rm -f "$work/loki/Chart.lock"
rm -rf "$work/loki/charts"
# Drop the top-level `dependencies:` block (it ends at the next top-level key).
awk '
  /^dependencies:/ { skip = 1; next }
  skip && /^[^[:space:]-]/ { skip = 0 }
  !skip { print }
' "$src/Chart.yaml" >"$work/loki/Chart.yaml"
if grep -q '^dependencies:' "$work/loki/Chart.yaml"; then
  echo "loki-chart.sh: could not drop the dependencies of $src/Chart.yaml" >&2
  exit 1
fi
mkdir -p "$out"
rm -f "$out"/loki-*.tgz
helm package "$work/loki" -d "$out" >/dev/null
[[ -f "$out/loki-$version.tgz" ]] || { echo "loki-chart.sh: helm package wrote no $out/loki-$version.tgz" >&2; exit 1; }
printf '%s\n' "$out/loki-$version.tgz"
