#!/usr/bin/env bash
# The Gateway API standard-channel CRDs in charts/outrigger/crds, copied unchanged from the pinned
# module sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION (config/crd/standard; tools/versions.sh), read
# from the Go module cache only (scripts/tools.sh step `gateway` keeps it there).
#
# usage: scripts/gateway-crds.sh          write charts/outrigger/crds/gateway.networking.k8s.io_*.yaml
#        scripts/gateway-crds.sh --check  fail when the committed files differ from the pin's
# Only the CustomResourceDefinitions: the channel's ValidatingAdmissionPolicy (vap_safeupgrades)
# guards cluster-wide CRD upgrades, which is the cluster owner's call, not an app chart's.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

mode=${1:-write}
[[ $mode == write || $mode == --check ]] || { sed -n '5,6p' "$0" >&2; exit 2; }
out="$OUTRIGGER_ROOT/charts/outrigger/crds"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
  go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" 2>/dev/null | jq -r '.Dir // empty') || true
[[ -n "$dir" && -d "$dir/config/crd/standard" ]] ||
  { echo "gateway-crds: sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION is not in the Go module cache: run scripts/tools.sh gateway" >&2; exit 1; }

mkdir -p "$work/crds"
for f in "$dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  grep -q '^kind: CustomResourceDefinition$' "$f" || continue
  # Every CRD must say it is the pinned bundle of the standard channel.
  if ! grep -q "gateway.networking.k8s.io/bundle-version: $GATEWAY_API_VERSION\$" "$f" ||
    ! grep -q 'gateway.networking.k8s.io/channel: standard$' "$f"; then
    echo "gateway-crds: $f is not the $GATEWAY_API_VERSION standard channel" >&2
    exit 1
  fi
  cp "$f" "$work/crds/"
done
chmod 0644 "$work"/crds/*.yaml

if [[ $mode == --check ]]; then
  if ! diff -r "$work/crds" "$out" >"$work/diff" 2>&1; then
    head -n 40 "$work/diff" >&2
    echo "gateway-crds: charts/outrigger/crds differs from sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION; run scripts/gateway-crds.sh" >&2
    exit 1
  fi
  echo "gateway-crds: charts/outrigger/crds is sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION (standard channel)"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
cp "$work"/crds/*.yaml "$out/"
echo "gateway-crds: wrote $(find "$out" -name '*.yaml' | wc -l) CRDs of sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION to charts/outrigger/crds"
