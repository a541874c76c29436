# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Shared by the platform check scripts (check-flux.sh, check-charts-platform.sh, check-promql.sh,
# check-terraform.sh): tool lookup and the Kubernetes version every render and schema uses.

# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"
# helm template --kube-version and the kubeconform schemas come from the same pin.
PLATFORM_KUBE_VERSION="${KUBERNETES_VERSION#v}"
export PLATFORM_KUBE_VERSION
PLATFORM_CHECKS="$OUTRIGGER_ROOT/scripts/lib/platform-checks.py"
KUBECONFORM="$OUTRIGGER_ROOT/scripts/kubeconform.sh"

# require TOOL... : fail (not skip) when a tool scripts/tools.sh installs is missing.
require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "${CHECK_NAME:-check}: $tool not installed (run scripts/tools.sh)" >&2
      exit 1
    }
  done
}

require_kubeconform() {
  [[ -x "$KUBECONFORM" ]] || {
    echo "${CHECK_NAME:-check}: scripts/kubeconform.sh missing (run scripts/tools.sh)" >&2
    exit 1
  }
}

# The repository's yamllint config when it exists, the platform one otherwise.
yamllint_config() {
  if [[ -f "$OUTRIGGER_ROOT/.yamllint.yaml" ]]; then
    echo "$OUTRIGGER_ROOT/.yamllint.yaml"
  else
    echo "$OUTRIGGER_ROOT/flux/.yamllint.yaml"
  fi
}

say() { echo "${CHECK_NAME:-check}: $*"; }
