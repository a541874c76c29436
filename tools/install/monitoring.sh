# shellcheck shell=bash
# The local node's monitoring binaries (PROMETHEUS_*, ALERTMANAGER_*, KUBE_STATE_METRICS_* in
# tools/versions.sh), the images kube-prometheus-stack KPS_CHART_VERSION's values name:
# prometheus-operator + prometheus-config-reloader and Prometheus from the wrapper modules in
# tools/monitoring (regen.sh there says why), kube-state-metrics with `go install`, Alertmanager from
# a copy of its module with an empty web UI (alertmanager_src says why).
# Prometheus is built as `prometheus3` so it never shadows Debian's prometheus (APT_PINS), which the
# PromQL checks run. The charts module stays in the module cache for scripts/kps-chart.sh;
# scripts/images.sh build monitoring makes the images.

# alertmanager_src: a copy of the Alertmanager module (ALERTMANAGER_VERSION) with a placeholder for
# its web UI, printed as its path. The module's ui/web.go embeds ui/app/dist, the output of an npm
# build that the module zip does not carry, so `go install` fails ("pattern app/dist: no matching
# files found"); the copy gets a one-page app/dist saying the UI is not built here. The API, which
# the operator, Prometheus and the e2e use, is unchanged.
alertmanager_src() {
  local mod dir="$OUTRIGGER_TOOLS/src/alertmanager@$ALERTMANAGER_VERSION"
  # Made whole or not at all (the placeholder is written last), so a finished copy is reused.
  if [[ -f "$dir/ui/app/dist/index.html" ]]; then
    printf '%s' "$dir"
    return 0
  fi
  mod=$(go mod download -json "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" | jq -r '.Dir // empty')
  [[ -n "$mod" && -f "$mod/ui/web.go" ]] || die "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION: no module source"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  cp -r "$mod" "$dir"
  chmod -R u+w "$dir"
  mkdir -p "$dir/ui/app/dist"
  printf '%s\n' '<!doctype html><title>Alertmanager</title><p>The web UI is not built here (docs/tools.md); the API under /api/v2 answers.</p>' \
    >"$dir/ui/app/dist/index.html"
  printf '%s' "$dir"
}

install_monitoring() {
  go_env_setup
  local common=github.com/prometheus/common/version po=github.com/prometheus-operator/prometheus-operator
  local ver="-X $common.Version" br="-X $common.Branch=HEAD -X $common.BuildUser=outrigger" am_src
  am_src=$(alertmanager_src)
  install_go_tools \
    "prometheus-operator|$PROMETHEUS_OPERATOR_VERSION|wrapper:monitoring/prometheus-operator:$po/cmd/operator|$ver=${PROMETHEUS_OPERATOR_VERSION#v} $br" \
    "prometheus-config-reloader|$PROMETHEUS_OPERATOR_VERSION|wrapper:monitoring/prometheus-operator:$po/cmd/prometheus-config-reloader|$ver=${PROMETHEUS_OPERATOR_VERSION#v} $br" \
    "prometheus3|$PROMETHEUS_MODULE_VERSION|wrapper:monitoring/prometheus:github.com/prometheus/prometheus/cmd/prometheus|$ver=${PROMETHEUS_VERSION#v} $br|$PROMETHEUS_BUILD_TAGS" \
    "alertmanager|$ALERTMANAGER_VERSION|srcdir:$am_src:./cmd/alertmanager|$ver=${ALERTMANAGER_VERSION#v} $br" \
    "kube-state-metrics|$KUBE_STATE_METRICS_VERSION|k8s.io/kube-state-metrics/v2@$KUBE_STATE_METRICS_VERSION|$ver=${KUBE_STATE_METRICS_VERSION#v} $br"
  keep_modules_cached "the kube-prometheus-stack chart" \
    "github.com/prometheus-community/helm-charts@$KPS_CHARTS_MODULE_VERSION"
  local name
  for name in prometheus-operator prometheus-config-reloader prometheus3 alertmanager; do
    "$OUTRIGGER_TOOLS/bin/$name" --version >/dev/null 2>&1 || die "$name --version failed"
  done
  # kube-state-metrics is a cobra command: `version` is a subcommand, not a flag.
  "$OUTRIGGER_TOOLS/bin/kube-state-metrics" version >/dev/null 2>&1 || die "kube-state-metrics version failed"
  log "version $("$OUTRIGGER_TOOLS/bin/prometheus3" --version 2>&1 | head -n 1)"
}
