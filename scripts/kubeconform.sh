#!/usr/bin/env bash
# Validates Kubernetes manifests with kubeconform against the offline schemas that scripts/tools.sh
# generated ($OUTRIGGER_TOOLS/schemas): `-strict -summary`, no network, and a kind without a local
# schema is an error, except the kinds in SKIP below (not API objects) or in
# $OUTRIGGER_KUBECONFORM_SKIP (comma-separated Kind or apiVersion/Kind).
#
# usage: scripts/kubeconform.sh [kubeconform flags...] FILE|DIR|- ...
#   e.g. helm template charts/x | scripts/kubeconform.sh -
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

schemas="$OUTRIGGER_TOOLS/schemas"
k8s_version=${KUBERNETES_VERSION#v}
if [[ ! -d "$schemas/kubernetes/$KUBERNETES_VERSION-standalone-strict" || ! -d "$schemas/crds" ]]; then
  echo "kubeconform.sh: no offline schemas in $schemas; run scripts/tools.sh first" >&2
  exit 2
fi
command -v kubeconform >/dev/null || { echo "kubeconform.sh: kubeconform not installed; run scripts/tools.sh" >&2; exit 2; }
[[ $# -gt 0 ]] || { echo "usage: $0 [kubeconform flags...] FILE|DIR|- ..." >&2; exit 2; }

# Files that look like manifests but are build inputs, not API objects.
SKIP="kustomize.config.k8s.io/v1beta1/Kustomization,kustomize.config.k8s.io/v1alpha1/Component"
if [[ -n "${OUTRIGGER_KUBECONFORM_SKIP:-}" ]]; then
  SKIP="$SKIP,$OUTRIGGER_KUBECONFORM_SKIP"
fi

exec kubeconform -strict -summary \
  -kubernetes-version "$k8s_version" \
  -schema-location "$schemas/kubernetes/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -schema-location "$schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
  -skip "$SKIP" \
  "$@"
