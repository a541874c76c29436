#!/usr/bin/env bash
# terraform/: fmt; the provider-free conventions module (init, validate, `terraform test`: naming,
# CIDR overlap, pool sizes, taint contract); init + validate of the DigitalOcean/Flux roots when
# the toolchain has the providers in a filesystem mirror (otherwise a known gap, listed at the end of
# `make test`: no registry serves them offline, docs/tools.md); no credentials in outputs; checkov with the repository's DOKS policies
# (tools/checks/platform-checkov), including a self-test that they reject the baseline's defects.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
CHECK_NAME=check-terraform
# shellcheck source=scripts/lib/platform-common.sh
source "$OUTRIGGER_ROOT/scripts/lib/platform-common.sh"

require terraform checkov
tf="$OUTRIGGER_ROOT/terraform"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Terraform state/plugins of these runs stay in $work, never in the tree.
export TF_IN_AUTOMATION=1 TF_INPUT=0
if [[ -f "$OUTRIGGER_TOOLS/terraformrc" ]]; then
  export TF_CLI_CONFIG_FILE="$OUTRIGGER_TOOLS/terraformrc"
else
  : >"$work/terraformrc"
  export TF_CLI_CONFIG_FILE="$work/terraformrc"
fi

say "terraform $(terraform version | head -n 1 | awk '{print $2}') fmt -check -recursive terraform/"
terraform fmt -check -recursive -diff "$tf"

say "modules/conventions: init, validate, terraform test (provider-free rules)"
export TF_DATA_DIR="$work/conventions"
terraform -chdir="$tf/modules/conventions" init -backend=false -no-color >/dev/null
terraform -chdir="$tf/modules/conventions" validate -no-color
terraform -chdir="$tf/modules/conventions" test -no-color
# The real environment settings against the same rules (undeclared keys such as ha/registry are
# only warnings for a var file; the conventions module's validations are what must pass).
for env in staging production; do
  say "envs/$env/terraform.tfvars against the conventions rules (terraform plan, no provider)"
  terraform -chdir="$tf/modules/conventions" plan -no-color -compact-warnings \
    -var-file="$tf/envs/$env/terraform.tfvars" >"$work/plan-$env.log" || {
    cat "$work/plan-$env.log" >&2
    exit 1
  }
  grep -q "name *= *\"outrigger-$env\"" "$work/plan-$env.log" || {
    echo "check-terraform: plan for $env did not produce the expected names" >&2
    cat "$work/plan-$env.log" >&2
    exit 1
  }
done
unset TF_DATA_DIR

# Provider-backed roots: only through a filesystem mirror (scripts/tools.sh, docs/tools.md), so
# `terraform init` never reaches for registry.terraform.io.
mirror_has() { compgen -G "$OUTRIGGER_TOOLS/terraform-mirror/registry.terraform.io/$1/*" >/dev/null; }
for root in modules/doks envs/staging envs/production bootstrap; do
  need=(digitalocean/digitalocean)
  [[ "$root" == bootstrap ]] && need+=(fluxcd/flux)
  missing=()
  for p in "${need[@]}"; do
    mirror_has "$p" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 || ! -f "$OUTRIGGER_TOOLS/terraformrc" ]]; then
    known_gap "terraform validate $root" "provider(s) ${missing[*]:-mirror config} not in the offline mirror (the Go module proxy refuses the provider modules)"
    continue
  fi
  say "$root: init -backend=false + validate (real providers from the mirror)"
  # On a copy: init writes .terraform.lock.hcl; a committed lock file must match (readonly).
  [[ -d "$work/tf" ]] || cp -R "$tf" "$work/tf"
  lock=()
  [[ -f "$tf/$root/.terraform.lock.hcl" ]] && lock=(-lockfile=readonly)
  export TF_DATA_DIR="$work/${root//\//-}"
  terraform -chdir="$work/tf/$root" init -backend=false -no-color "${lock[@]}" >/dev/null
  terraform -chdir="$work/tf/$root" validate -no-color
  unset TF_DATA_DIR
done

say "outputs carry no credentials (kubeconfigs come from doctl exec credentials)"
if grep -nE 'kube_config|raw_config|\btoken\b|private_key|password' "$tf"/*/outputs.tf "$tf"/*/*/outputs.tf; then
  echo "check-terraform: an output exposes cluster credentials" >&2
  exit 1
fi

say "terraform/README.md reference tables are current (outrigger-checks tfdocs --check)"
require python3
"$PLATFORM_CHECKS" tfdocs --check

policies="$OUTRIGGER_ROOT/tools/checks/platform-checkov"
say "checkov (terraform, with tools/checks/platform-checkov)"
checkov --directory "$tf" --framework terraform --quiet --compact --skip-download --external-checks-dir "$policies"

say "self-test: the DOKS policies must reject the baseline's defects"
cp -R "$tf" "$work/bad"
sed -i -e 's/auto_upgrade  = true/auto_upgrade  = false/' -e 's/^  vpc_uuid = .*$//' \
  -e 's/^  auto_scale = true/  auto_scale = false/' "$work/bad/modules/doks/main.tf"
if checkov --directory "$work/bad" --framework terraform --quiet --compact --skip-download \
  --external-checks-dir "$policies" >"$work/bad.log" 2>&1; then
  echo "check-terraform: the DOKS policies accepted a cluster without VPC/auto-upgrade/autoscaling" >&2
  exit 1
fi
for id in CKV2_OUTRIGGER_1 CKV2_OUTRIGGER_2 CKV2_OUTRIGGER_3; do
  grep -q "$id" "$work/bad.log" || { echo "check-terraform: $id did not fire on the broken copy" >&2; exit 1; }
done
say "ok"
