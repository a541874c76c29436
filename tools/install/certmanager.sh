# shellcheck shell=bash
# cert-manager (CERTMANAGER_* in tools/versions.sh): controller, webhook, cainjector and
# startupapicheck built into $OUTRIGGER_TOOLS/bin as cert-manager-NAME, each from its module in
# tools/cert-manager/NAME (regen.sh there says why the sources are copied), with upstream's ldflags
# (pkg/util.AppVersion), and the root module kept in the module cache for its Helm chart
# (scripts/images.sh certmanager_chart_dir reads it offline).

install_certmanager() {
  go_env_setup
  local name specs=()
  local ldflags="-X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERTMANAGER_VERSION"
  ldflags+=" -X github.com/cert-manager/cert-manager/pkg/util.AppGitCommit=$CERTMANAGER_SRC_REF"
  for name in "${CERTMANAGER_BINARIES[@]}"; do
    specs+=("cert-manager-$name|$CERTMANAGER_VERSION|wrapper:cert-manager/$name:.|$ldflags")
  done
  install_go_tools "${specs[@]}"
  keep_modules_cached "its chart" "github.com/cert-manager/cert-manager@$CERTMANAGER_VERSION"
  help_runs "${CERTMANAGER_BINARIES[@]/#/cert-manager-}"
  log "version cert-manager $CERTMANAGER_VERSION (cmd/ sources of $CERTMANAGER_SRC_REF): ${CERTMANAGER_BINARIES[*]}"
}
