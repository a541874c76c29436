# shellcheck shell=bash
# Loki (LOKI_VERSION in tools/versions.sh) for the local node's GitOps entry: cmd/loki built into
# $OUTRIGGER_TOOLS/bin/loki from the wrapper module tools/loki (tools.go there says why a wrapper),
# with upstream's version ldflags, and the Loki module kept in the module cache for its Helm chart
# (scripts/loki-chart.sh packages it offline; scripts/images.sh build loki makes the image).

install_loki() {
  go_env_setup
  local ldflags="-X github.com/grafana/loki/v3/pkg/util/build.Version=${LOKI_VERSION#v}"
  ldflags+=" -X github.com/grafana/loki/v3/pkg/util/build.Branch=release-${LOKI_VERSION#v}"
  install_go_tools "loki|$LOKI_VERSION|wrapper:loki:github.com/grafana/loki/v3/cmd/loki|$ldflags"
  keep_modules_cached "its chart" "github.com/grafana/loki/v3@$LOKI_VERSION"
  "$OUTRIGGER_TOOLS/bin/loki" -version >/dev/null 2>&1 || die "loki -version failed"
  log "version $("$OUTRIGGER_TOOLS/bin/loki" -version | head -n 1)"
}
