# shellcheck shell=bash
# Terraform for the checks: the terraform binary (the machine's, else OpenTofu built from the Go
# module proxy), a provider filesystem mirror $OUTRIGGER_TOOLS/terraform-mirror filled with
# providers built from the Go module proxy, and $OUTRIGGER_TOOLS/terraformrc that makes terraform
# install providers from that mirror only (never from the network). scripts/lib/env.sh exports
# TF_CLI_CONFIG_FILE when the file exists.

install_terraform_binary() {
  local have
  if command -v terraform >/dev/null 2>&1 && [[ "$(command -v terraform)" != "$OUTRIGGER_TOOLS/bin/terraform" ]]; then
    have=$(terraform version -json 2>/dev/null | "$OUTRIGGER_TOOLS/venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])')
    if [[ "$have" == "$TERRAFORM_EXPECTED" ]]; then
      log "ok      terraform $have ($(command -v terraform), from the machine image)"
    else
      log "WARNING terraform $have at $(command -v terraform); docs/tools.md was written against $TERRAFORM_EXPECTED"
    fi
    return 0
  fi
  # No terraform on the machine: OpenTofu (same CLI, same provider protocol) as `terraform`.
  install_go_tools "tofu|$OPENTOFU_VERSION|wrapper:opentofu:github.com/opentofu/opentofu/cmd/tofu|-X github.com/opentofu/opentofu/version.dev=no"
  ln -sfn tofu "$OUTRIGGER_TOOLS/bin/terraform"
  log "ok      terraform = $("$OUTRIGGER_TOOLS/bin/tofu" version | head -n 1) (fallback, built from the Go module proxy)"
}

# install_provider NS/NAME MODULE VERSION: builds one provider into the mirror. A module the proxy
# refuses is reported (with the proxy's own words) and skipped; the step still succeeds.
install_provider() {
  local source=$1 module=$2 version=$3 ver dir out err
  ver=${version#v}
  ver=${ver%+incompatible}
  dir="$OUTRIGGER_TOOLS/terraform-mirror/registry.terraform.io/$source/$ver/linux_amd64"
  out="$dir/terraform-provider-${source#*/}_v$ver"
  if stamp_ok "tf-${source//\//-}" "$version $(go env GOVERSION)" "$out"; then
    skip_msg "terraform provider $source" "$ver"
    return 0
  fi
  if ! err=$(go mod download -json "$module@$version" 2>&1); then
    log "MISSING terraform provider $source $version: the Go module proxy refuses $module:"
    printf '%s\n' "$err" | grep -o '"Error": ".*"' | head -n 1 >&2 || true
    return 0
  fi
  mkdir -p "$dir"
  log "build   terraform provider $source $version"
  GOBIN="$dir" go install -ldflags="-s -w -X main.version=$ver" "$module@$version" \
    >"$OUTRIGGER_TOOLS/logs/tf-${source//\//-}.log" 2>&1
  mv "$dir/$(basename "${module%%@*}")" "$out"
  stamp_write "tf-${source//\//-}" "$version $(go env GOVERSION)"
}

install_terraform() {
  go_env_setup
  # Always written, even with an empty mirror: no `direct` block means terraform never reaches for
  # a registry, so a missing provider fails fast and offline instead of after DNS timeouts.
  local rc="$OUTRIGGER_TOOLS/terraformrc" want
  want=$(printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' \
    "$OUTRIGGER_TOOLS/terraform-mirror")
  mkdir -p "$OUTRIGGER_TOOLS/terraform-mirror"
  if [[ ! -f "$rc" || "$(cat "$rc")" != "$want" ]]; then
    printf '%s\n' "$want" >"$rc"
    tools_changed
    log "wrote   $rc (filesystem mirror only)"
  fi
  export TF_CLI_CONFIG_FILE="$rc"
  install_terraform_binary
  local spec source module version
  for spec in "${TF_PROVIDERS[@]}"; do
    IFS='|' read -r source module version <<<"$spec"
    install_provider "$source" "$module" "$version"
  done
  log "mirror  providers: $(cd "$OUTRIGGER_TOOLS/terraform-mirror" && find . -name 'terraform-provider-*' | sed 's|^\./||' | tr '\n' ' ')"
}
