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
  # Not behind the stamps: a cached .tools/ with an empty module cache must still find the chart.
  (cd "$OUTRIGGER_TOOLS" && GOFLAGS=-mod=mod go mod download "github.com/cert-manager/cert-manager@$CERTMANAGER_VERSION") \
    || die "go mod download github.com/cert-manager/cert-manager@$CERTMANAGER_VERSION failed (its chart)"
  for name in "${CERTMANAGER_BINARIES[@]}"; do
    # Each binary prints its flags on --help; that it starts at all proves it links.
    "$OUTRIGGER_TOOLS/bin/cert-manager-$name" --help >/dev/null 2>&1 || die "cert-manager-$name --help failed"
  done
  log "version cert-manager $CERTMANAGER_VERSION (cmd/ sources of $CERTMANAGER_SRC_REF): ${CERTMANAGER_BINARIES[*]}"
}
