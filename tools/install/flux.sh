# shellcheck shell=bash
# The Flux controllers (FLUX_CONTROLLERS in tools/versions.sh), built from their Go modules into
# $OUTRIGGER_TOOLS/bin with one wrapper module each in tools/flux-controllers/NAME (a controller's
# own go.mod replaces its api module with ./api, which only a wrapper can substitute). Also keeps the
# flux2 module and the controllers' root modules in the module cache: its manifests/ tree is `flux install`'s layout, which
# scripts/flux-install-manifests.sh builds offline from the cache.

install_flux_controllers() {
  go_env_setup
  local spec name version specs=()
  for spec in "${FLUX_CONTROLLERS[@]}"; do
    name=${spec%@*} version=${spec#*@}
    specs+=("$name|$version|wrapper:flux-controllers/$name:github.com/fluxcd/$name|")
  done
  install_go_tools "${specs[@]}"
  # flux-install-manifests.sh reads the flux2 manifests and each controller's config/ from the cache.
  local mods=("github.com/fluxcd/flux2/v2@$FLUX_VERSION") names=()
  for spec in "${FLUX_CONTROLLERS[@]}"; do mods+=("github.com/fluxcd/$spec") names+=("${spec%@*}"); done
  keep_modules_cached "modules for scripts/flux-install-manifests.sh" "${mods[@]}"
  help_runs "${names[@]}"
  log "version ${FLUX_CONTROLLERS[*]} (Flux $FLUX_VERSION manifests)"
}
