# shellcheck shell=bash
# Offline kubeconform schemas in $OUTRIGGER_TOOLS/schemas (layout: docs/tools.md):
#   kubernetes/v<K8S>-standalone-strict/<kind>-<group>-<version>.json  from k8s.io/kubernetes' swagger.json
#   crds/<group>/<kind>_<version>.json                                from CRD YAMLs in Go modules
# Generator: tools/schemas/gen_schemas.py. Everything comes from the Go module proxy; nothing is
# fetched when kubeconform runs (scripts/kubeconform.sh points it at these directories only).

# mod_dir MODULE@VERSION: the module's directory in the Go module cache (downloading it if needed).
mod_dir() {
  local json
  json=$(go mod download -json "$1") || { printf '%s\n' "$json" >&2; return 1; }
  printf '%s' "$json" | "$OUTRIGGER_TOOLS/venv/bin/python" -c \
    'import json, sys; d = json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error", "no Dir"))'
}

schemas_key() {
  printf '%s ' "$KUBERNETES_VERSION" "${CRD_YAML_MODULES[@]}" "${CRD_GEN_MODULES[@]}" "$CONTROLLER_GEN_VERSION"
  key_of tools/schemas/gen_schemas.py tools/crdgen/go.mod tools/crdgen/go.sum
}

install_schemas() {
  go_env_setup
  local out="$OUTRIGGER_TOOLS/schemas" key py="$OUTRIGGER_TOOLS/venv/bin/python"
  local k8s_dir="kubernetes/${KUBERNETES_VERSION}-standalone-strict"
  key=$(schemas_key)
  # scripts/gateway-crds.sh --check (check-charts-platform) compares charts/outrigger/crds with this
  # module offline; the charts CI job installs only python go schemas.
  keep_modules_cached "scripts/gateway-crds.sh --check" "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  if stamp_ok schemas "$key" "$out/$k8s_dir/deployment-apps-v1.json" "$out/crds"; then
    skip_msg schemas "kubernetes $KUBERNETES_VERSION + $(find "$out/crds" -name '*.json' | wc -l) CRD versions"
    return 0
  fi
  [[ -x "$py" ]] || die "schemas need the python step first (PyYAML in $OUTRIGGER_TOOLS/venv)"
  local tmp="$OUTRIGGER_TOOLS/schemas.tmp" dir spec mv sub files=()
  rm -rf "$tmp"
  mkdir -p "$tmp"

  log "schemas kubernetes $KUBERNETES_VERSION (k8s.io/kubernetes api/openapi-spec/swagger.json)"
  dir=$(mod_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  "$py" tools/schemas/gen_schemas.py kubernetes --swagger "$dir/api/openapi-spec/swagger.json" \
    --out "$tmp/$k8s_dir"

  for spec in "${CRD_YAML_MODULES[@]}"; do
    mv=${spec%%:*} sub=${spec#*:}
    log "schemas CRDs from $mv ($sub)"
    dir=$(mod_dir "$mv")
    files+=("$dir/$sub"/*.yaml)
  done

  log "schemas CRDs via controller-gen $CONTROLLER_GEN_VERSION from: ${CRD_GEN_MODULES[*]}"
  (cd tools/crdgen && go build -ldflags='-s -w' -o "$OUTRIGGER_TOOLS/bin/controller-gen" \
    sigs.k8s.io/controller-tools/cmd/controller-gen)
  local paths=() pkg
  for mv in "${CRD_GEN_MODULES[@]}" "sigs.k8s.io/controller-tools@$CONTROLLER_GEN_VERSION"; do
    grep -qE "^[[:space:]]*(require )?${mv%@*} ${mv#*@}\$" tools/crdgen/go.mod \
      || die "tools/crdgen/go.mod does not require $mv (tools/versions.sh); update one of them"
  done
  for mv in "${CRD_GEN_MODULES[@]}"; do
    dir=$(cd tools/crdgen && mod_dir "$mv")
    for pkg in "$dir"/v*/; do
      paths+=("paths=${mv%@*}/$(basename "$pkg")")
    done
  done
  # Run inside tools/crdgen so the packages resolve against its pinned go.sum. Versions marked
  # +kubebuilder:skipversion upstream are (correctly) left out, as in the controllers' own CRDs.
  (cd tools/crdgen && "$OUTRIGGER_TOOLS/bin/controller-gen" crd:crdVersions=v1 "${paths[@]}" \
    output:crd:dir="$tmp/generated-crds")
  files+=("$tmp/generated-crds"/*.yaml)

  "$py" tools/schemas/gen_schemas.py crds --out "$tmp/crds" \
    --objectmeta "$tmp/$k8s_dir/_objectmeta.json" "${files[@]}"
  rm -rf "$tmp/generated-crds"

  rm -rf "$out"
  mv "$tmp" "$out"
  stamp_write schemas "$key"
  log "schemas $(find "$out/kubernetes" -name '*.json' | wc -l) kubernetes + $(find "$out/crds" -name '*.json' | wc -l) CRD schemas in $out"
}
