#!/usr/bin/env bash
# Writes OUTDIR/gotk-components.yaml: the flux-system manifests of the pinned Flux controllers
# (FLUX_CONTROLLERS in tools/versions.sh), laid out the way `flux install` lays them out.
#
# usage: scripts/flux-install-manifests.sh OUTDIR
#   IMAGE_REGISTRY  registry prefix of the controller images (default ghcr.io/fluxcd, as
#                   `flux install`); image = $IMAGE_REGISTRY/NAME:VERSION with VERSION the pin.
#
# How `flux install` builds it (github.com/fluxcd/flux2/v2 at $FLUX_VERSION): manifests/bases/NAME
# per controller (ServiceAccount, labels, a patch adding --events-addr, serviceAccountName,
# priorityClassName, GOMEMLIMIT), manifests/rbac and manifests/policies (bundled by
# manifests/scripts/bundle.sh), then pkg/manifestgen/install/templates.go: namespace, labels with the
# version, node selector, per-controller args (--watch-all-namespaces, --log-level, --events-addr,
# --storage-adv-addr), roles with the -flux-system suffix, image names. The bases point at the
# controllers' GitHub release assets (NAME.crds.yaml, NAME.deployment.yaml); here they come from the
# same controllers' Go modules instead: config/crd/bases (the CRDs) and `kustomize build
# config/manager` (the Deployment with its real flags, ports and probes, and the Services), which
# is what those release assets are built from. Everything is read from the Go module cache with
# GOPROXY=off (scripts/tools.sh step `flux` fills it), so nothing is fetched here.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
outdir=$1
registry=${IMAGE_REGISTRY:-ghcr.io/fluxcd}
command -v kustomize >/dev/null || { echo "flux-install-manifests.sh: kustomize not installed; run scripts/tools.sh go" >&2; exit 2; }
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || { echo "flux-install-manifests.sh: go is not on PATH" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# mod_dir MODULE@VERSION: the module's directory in the Go module cache, never from the network.
mod_dir() {
  local dir
  dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off go mod download -json "$1" 2>/dev/null \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n "$dir" && -d "$dir" ]] || {
    echo "flux-install-manifests.sh: $1 is not in the Go module cache; run scripts/tools.sh flux" >&2
    return 1
  }
  printf '%s' "$dir"
}

ns=flux-system
flux2=$(mod_dir "github.com/fluxcd/flux2/v2@$FLUX_VERSION")
base="$work/install"
mkdir -p "$base/roles" "$work/manifests"
cp -r "$flux2/manifests/bases" "$flux2/manifests/rbac" "$flux2/manifests/policies" "$work/manifests/"
chmod -R u+w "$work/manifests"

components=()
for spec in "${FLUX_CONTROLLERS[@]}"; do
  name=${spec%@*} version=${spec#*@}
  components+=("$name")
  dir=$(mod_dir "github.com/fluxcd/$name@$version")
  b="$work/manifests/bases/$name"
  [[ -f "$b/kustomization.yaml" ]] || { echo "flux-install-manifests.sh: flux2 $FLUX_VERSION has no base for $name" >&2; exit 1; }
  for f in "$dir"/config/crd/bases/*.yaml; do
    printf -- '---\n'
    cat "$f"
  done >"$b/$name.crds.yaml"
  kustomize build "$dir/config/manager" >"$b/$name.deployment.yaml"
  # Point the base at the module's files instead of the GitHub release assets (any version).
  sed -i -E "s#^- https://github.com/fluxcd/$name/releases/download/[^/]+/($name\.(crds|deployment)\.yaml)\$#- \1#" \
    "$b/kustomization.yaml"
  if grep -q 'https://' "$b/kustomization.yaml"; then
    echo "flux-install-manifests.sh: $b/kustomization.yaml still has a remote resource:" >&2
    grep 'https://' "$b/kustomization.yaml" >&2
    exit 1
  fi
  kustomize build "$b" >"$base/$name.yaml"
done
kustomize build "$work/manifests/rbac" >"$base/roles/rbac.yaml"
kustomize build "$work/manifests/policies" >"$base/policies.yaml"

# From here on: pkg/manifestgen/install/templates.go with flux install's defaults (namespace
# flux-system, network policies on, watch all namespaces, log level info, cluster.local), the
# notification-controller present so events go to it.
events_addr="http://notification-controller.\$(RUNTIME_NAMESPACE).svc.cluster.local./"
cat >"$base/namespace.yaml" <<YAML
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/warn-version: latest
YAML
cat >"$base/labels.yaml" <<YAML
---
apiVersion: builtin
kind: LabelTransformer
metadata:
  name: labels
labels:
  app.kubernetes.io/instance: $ns
  app.kubernetes.io/version: "$FLUX_VERSION"
  app.kubernetes.io/part-of: flux
fieldSpecs:
  - path: metadata/labels
    create: true
  - kind: Deployment
    path: spec/template/metadata/labels
    create: true
YAML
cat >"$base/node-selector.yaml" <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: all
spec:
  template:
    spec:
      nodeSelector:
        kubernetes.io/os: linux
YAML
cat >"$base/roles/kustomization.yaml" <<YAML
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $ns
resources:
  - rbac.yaml
nameSuffix: -$ns
YAML

# arg_patch NAME INDEX=VALUE...: the JSON6902 patch replacing the given container args of NAME.
arg_patch() {
  local name=$1 kv
  shift
  printf -- '- target:\n    group: apps\n    version: v1\n    kind: Deployment\n    name: %s\n  patch: |-\n' "$name"
  for kv in "$@"; do
    printf '    - op: replace\n      path: /spec/template/spec/containers/0/args/%s\n      value: %s\n' \
      "${kv%%=*}" "${kv#*=}"
  done
}
{
  printf -- '---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\n' "$ns"
  printf 'transformers:\n  - labels.yaml\nresources:\n  - namespace.yaml\n  - policies.yaml\n  - roles\n'
  for name in "${components[@]}"; do printf '  - %s.yaml\n' "$name"; done
  printf 'patches:\n- path: node-selector.yaml\n  target:\n    kind: Deployment\n'
  for name in "${components[@]}"; do
    case "$name" in
      notification-controller)
        arg_patch "$name" "0=--watch-all-namespaces=true" "1=--log-level=info" ;;
      source-controller)
        arg_patch "$name" "0=--events-addr=$events_addr" "1=--watch-all-namespaces=true" "2=--log-level=info" \
          "6=--storage-adv-addr=$name.\$(RUNTIME_NAMESPACE).svc.cluster.local." ;;
      *)
        arg_patch "$name" "0=--events-addr=$events_addr" "1=--watch-all-namespaces=true" "2=--log-level=info" ;;
    esac
  done
  printf 'images:\n'
  for spec in "${FLUX_CONTROLLERS[@]}"; do
    printf '  - name: fluxcd/%s\n    newName: %s/%s\n    newTag: %s\n' "${spec%@*}" "$registry" "${spec%@*}" "${spec#*@}"
  done
} >"$base/kustomization.yaml"

mkdir -p "$outdir"
{
  printf -- '---\n# This manifest was generated by scripts/flux-install-manifests.sh (the layout of flux install). DO NOT EDIT.\n'
  printf '# Flux Version: %s\n# Components: %s\n' "$FLUX_VERSION" "$(IFS=,; echo "${FLUX_CONTROLLERS[*]}")"
  kustomize build "$base"
} >"$outdir/gotk-components.yaml.tmp"
mv "$outdir/gotk-components.yaml.tmp" "$outdir/gotk-components.yaml"
echo "flux-install-manifests.sh: wrote $outdir/gotk-components.yaml ($(grep -c '^kind:' "$outdir/gotk-components.yaml") objects, images $registry/NAME:VERSION)"
