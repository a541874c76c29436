# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # variables used by / taken from the scripts sourcing this file
# Shared by the platform check scripts (check-flux.sh, check-charts-platform.sh, check-promql.sh,
# check-terraform.sh): tool lookup and the Kubernetes version every render and schema uses.

# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"
# helm template --kube-version and the kubeconform schemas come from the same pin.
PLATFORM_KUBE_VERSION="${KUBERNETES_VERSION#v}"
export PLATFORM_KUBE_VERSION
PLATFORM_CHECKS="$OUTRIGGER_ROOT/tools/checks/outrigger-checks"
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

# The repository's shared yamllint config.
yamllint_config() {
  echo "$OUTRIGGER_ROOT/.yamllint.yaml"
}

say() { echo "${CHECK_NAME:-check}: $*"; }

# with_kube_api: start a private kube-apiserver (scripts/kube-test-env.sh, state in $work/kube) for
# server-side dry runs; sets KUBE_STATE. Returns 1 (after a loud SKIPPED) when the toolchain could
# not build kube-apiserver; under CI=true that exits 1 instead (scripts/lib/skip.sh). The caller's
# EXIT trap must run stop_kube_api.
KUBE_STATE=""
with_kube_api() {
  if [[ ! -x "$OUTRIGGER_TOOLS/bin/kube-apiserver" ]]; then
    skip_or_fail "server-side dry run" "kube-apiserver not built by scripts/tools.sh (step kube)"
    return 1
  fi
  KUBE_STATE="$work/kube"
  # The local node's Service range (scripts/cluster.sh SERVICE_CIDR): the fixed clusterIPs of the
  # local Flux entry (Loki's Service, the gateway's) are only valid in it.
  OUTRIGGER_KUBE_TEST_DIR="$KUBE_STATE" OUTRIGGER_KUBE_SERVICE_CIDR=10.242.0.0/24 \
    "$OUTRIGGER_ROOT/scripts/kube-test-env.sh" start >/dev/null
}

stop_kube_api() {
  if [[ -n "$KUBE_STATE" ]]; then
    OUTRIGGER_KUBE_TEST_DIR="$KUBE_STATE" "$OUTRIGGER_ROOT/scripts/kube-test-env.sh" stop >/dev/null 2>&1 || true
  fi
}
