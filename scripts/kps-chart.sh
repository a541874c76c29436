#!/usr/bin/env bash
# kube-prometheus-stack's Helm chart for the local node, packaged from the Go module the toolchain
# keeps in the module cache (scripts/tools.sh monitoring): charts/kube-prometheus-stack of
# github.com/prometheus-community/helm-charts at KPS_CHARTS_MODULE_VERSION (tools/versions.sh) is
# chart KPS_CHART_VERSION. Of its five subcharts, `crds` ships inside the chart and kube-state-metrics
# in the same module (charts/kube-state-metrics, the version the chart asks for): both are kept, the
# latter copied into charts/ with its repository line dropped. prometheus-node-exporter,
# prometheus-windows-exporter and grafana live in remote Helm repositories that cannot be reached
# offline, and the local values switch all three off, so the copy drops them from Chart.yaml;
# `helm package` then needs no repository at all.
#
# usage: scripts/kps-chart.sh OUT_DIR    writes OUT_DIR/kube-prometheus-stack-KPS_CHART_VERSION.tgz,
#                                        prints its path
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

out=${1:?usage: scripts/kps-chart.sh OUT_DIR}
command -v helm >/dev/null || { echo "kps-chart.sh: helm not installed (scripts/tools.sh go)" >&2; exit 1; }
command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || { echo "kps-chart.sh: go not installed" >&2; exit 1; }
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The module's directory in the Go module cache, never from the network (GOPROXY=off).
mod=github.com/prometheus-community/helm-charts@$KPS_CHARTS_MODULE_VERSION
dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off go mod download -json "$mod" 2>/dev/null |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
src=$dir/charts/kube-prometheus-stack
[[ -n "$dir" && -f "$src/Chart.yaml" ]] ||
  { echo "kps-chart.sh: $mod is not in the Go module cache; run scripts/tools.sh monitoring" >&2; exit 1; }
chart_version() { sed -n 's/^version: *//p' "$1/Chart.yaml" | tr -d '"'; }
version=$(chart_version "$src")
[[ "$version" == "$KPS_CHART_VERSION" ]] ||
  { echo "kps-chart.sh: $mod carries chart $version, tools/versions.sh says KPS_CHART_VERSION=$KPS_CHART_VERSION" >&2; exit 1; }
# The kube-state-metrics version the chart depends on must be the one the module carries.
ksm_want=$(awk '/^  - name: kube-state-metrics/ { f = 1; next } f && /version:/ { gsub(/[" ]/, "", $2); print $2; exit }' "$src/Chart.yaml")
ksm_have=$(chart_version "$dir/charts/kube-state-metrics")
[[ -n "$ksm_want" && "$ksm_want" == "$ksm_have" ]] ||
  { echo "kps-chart.sh: the chart wants kube-state-metrics '$ksm_want', $mod carries '$ksm_have'" >&2; exit 1; }

kps=$work/kube-prometheus-stack
cp -r "$src" "$kps"
cp -r "$dir/charts/kube-state-metrics" "$kps/charts/kube-state-metrics"
# The module cache is read-only; the copy must be writable for the edits below.
chmod -R u+w "$kps"
rm -f "$kps/Chart.lock"
# In the top-level `dependencies:` list, drop the three remote entries and the repository line of
# kube-state-metrics (now in charts/).
awk '
  /^dependencies:/ { deps = 1; print; next }
  deps && /^[^[:space:]-]/ { deps = 0 }
  deps && /^  - name: / {
    drop = ($3 == "prometheus-node-exporter" || $3 == "grafana" || $3 == "prometheus-windows-exporter")
  }
  deps && (drop || /^    repository:/) { next }
  { print }
' "$src/Chart.yaml" >"$kps/Chart.yaml"
if grep -qE '^ +(repository:|- name: (grafana|prometheus-node-exporter|prometheus-windows-exporter)$)' "$kps/Chart.yaml"; then
  echo "kps-chart.sh: could not drop the remote dependencies of $src/Chart.yaml" >&2
  exit 1
fi
mkdir -p "$out"
rm -f "$out"/kube-prometheus-stack-*.tgz
helm package "$kps" -d "$out" >/dev/null
[[ -f "$out/kube-prometheus-stack-$version.tgz" ]] ||
  { echo "kps-chart.sh: helm package wrote no $out/kube-prometheus-stack-$version.tgz" >&2; exit 1; }
printf '%s\n' "$out/kube-prometheus-stack-$version.tgz"
