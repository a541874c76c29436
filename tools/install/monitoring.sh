# shellcheck shell=bash
# The local node's monitoring binaries (PROMETHEUS_*, ALERTMANAGER_*, KUBE_STATE_METRICS_* in
# tools/versions.sh), the images kube-prometheus-stack KPS_CHART_VERSION's values name:
# prometheus-operator + prometheus-config-reloader and Prometheus from the wrapper modules in
# tools/monitoring (regen.sh there says why), Alertmanager and kube-state-metrics with `go install`.
# Prometheus is built as `prometheus3` so it never shadows Debian's prometheus (APT_PINS), which the
# PromQL checks run. The charts module stays in the module cache for scripts/kps-chart.sh;
# scripts/images.sh build monitoring makes the images.

install_monitoring() {
  go_env_setup
  local common=github.com/prometheus/common/version po=github.com/prometheus-operator/prometheus-operator
  local ver="-X $common.Version" br="-X $common.Branch=HEAD -X $common.BuildUser=outrigger"
  install_go_tools \
    "prometheus-operator|$PROMETHEUS_OPERATOR_VERSION|wrapper:monitoring/prometheus-operator:$po/cmd/operator|$ver=${PROMETHEUS_OPERATOR_VERSION#v} $br" \
    "prometheus-config-reloader|$PROMETHEUS_OPERATOR_VERSION|wrapper:monitoring/prometheus-operator:$po/cmd/prometheus-config-reloader|$ver=${PROMETHEUS_OPERATOR_VERSION#v} $br" \
    "prometheus3|$PROMETHEUS_MODULE_VERSION|wrapper:monitoring/prometheus:github.com/prometheus/prometheus/cmd/prometheus|$ver=${PROMETHEUS_VERSION#v} $br|$PROMETHEUS_BUILD_TAGS" \
    "alertmanager|$ALERTMANAGER_VERSION|github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION|$ver=${ALERTMANAGER_VERSION#v} $br" \
    "kube-state-metrics|$KUBE_STATE_METRICS_VERSION|k8s.io/kube-state-metrics/v2@$KUBE_STATE_METRICS_VERSION|$ver=${KUBE_STATE_METRICS_VERSION#v} $br"
  keep_modules_cached "the kube-prometheus-stack chart" \
    "github.com/prometheus-community/helm-charts@$KPS_CHARTS_MODULE_VERSION"
  local name
  for name in prometheus-operator prometheus-config-reloader prometheus3 alertmanager kube-state-metrics; do
    "$OUTRIGGER_TOOLS/bin/$name" --version >/dev/null 2>&1 || die "$name --version failed"
  done
  log "version $("$OUTRIGGER_TOOLS/bin/prometheus3" --version 2>&1 | head -n 1)"
}
