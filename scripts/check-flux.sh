#!/usr/bin/env bash
# Flux tree (flux/) as Flux would apply it, per cluster:
#   yamllint; kustomize build of every overlay; render every cluster (Flux Kustomization paths
#   built without load restrictions, postBuild variables substituted, HelmReleases of charts in
#   this repo templated with their values and post-renderers, podinfo's post-renderer applied to a
#   stand-in of its chart) -> kubeconform strict (Kubernetes + CRD schemas, no missing-schema
#   skips) -> server-side dry run of every core object on a real kube-apiserver -> current Flux
#   API versions only -> node-pool placement (+ Terraform's pools/taint) -> checkov; the flux-system
#   manifests of the pinned controllers (scripts/flux-install-manifests.sh) -> kubeconform; plus
#   self-tests proving the placement/API/substitution checks reject bad input.
# Every overlay is validated in the context of the cluster that deploys it (after postBuild
# substitution, as Flux applies it); an overlay no cluster deploys fails the render.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
CHECK_NAME=check-flux
# shellcheck source=scripts/lib/platform-common.sh
source "$OUTRIGGER_ROOT/scripts/lib/platform-common.sh"

require python3 helm yamllint checkov kustomize
require_kubeconform
work="$(mktemp -d)"
trap 'stop_kube_api; rm -rf "$work"' EXIT
cd "$OUTRIGGER_ROOT"

say "yamllint ($(yamllint_config | sed "s|$OUTRIGGER_ROOT/||")) flux/ .sops.yaml"
yamllint --strict -c "$(yamllint_config)" flux/ .sops.yaml

say "kustomize build of every overlay under flux/"
overlays=0
while IFS= read -r k; do
  dir="$(dirname "$k")"
  kustomize build --load-restrictor=LoadRestrictionsNone "$dir" >"$work/overlay.yaml" || {
    echo "check-flux: kustomize build $dir failed" >&2
    exit 1
  }
  overlays=$((overlays + 1))
done < <(find flux -name kustomization.yaml | sort)
say "  $overlays overlays build"

say "render every cluster as Flux applies it"
"$PLATFORM_CHECKS" render "$work/out"
mapfile -t rendered < <(find "$work/out" -name '*.yaml' | sort)

say "kubeconform -strict on ${#rendered[@]} rendered files (Kubernetes $PLATFORM_KUBE_VERSION + CRDs)"
"$KUBECONFORM" "${rendered[@]}"

say "flux-system manifests of the pinned controllers (scripts/flux-install-manifests.sh) -> kubeconform"
IMAGE_REGISTRY=registry.check.invalid/fluxcd "$OUTRIGGER_ROOT/scripts/flux-install-manifests.sh" "$work/flux-install"
"$KUBECONFORM" "$work/flux-install/gotk-components.yaml"
# The layout must hold every pinned controller with its image from IMAGE_REGISTRY at its pin, CRDs
# of every toolkit group, and the Services other objects address (artifacts, events, webhooks).
python3 - "$work/flux-install/gotk-components.yaml" registry.check.invalid/fluxcd "${FLUX_CONTROLLERS[@]}" <<'PY'
import sys, yaml
path, registry, pins = sys.argv[1], sys.argv[2], sys.argv[3:]
docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
want = {f"{registry}/{p.split('@')[0]}:{p.split('@')[1]}" for p in pins}
got = {c["image"] for d in by_kind.get("Deployment", {}).values() for c in d["spec"]["template"]["spec"]["containers"]}
errors = []
if got != want:
    errors.append(f"controller images {sorted(got)} != pins {sorted(want)}")
for d in by_kind.get("Deployment", {}).values():
    if d["metadata"].get("namespace") != "flux-system":
        errors.append(f"Deployment {d['metadata']['name']} not in flux-system")
for svc in ("source-controller", "notification-controller", "webhook-receiver"):
    if svc not in by_kind.get("Service", {}):
        errors.append(f"no Service {svc}")
groups = {d["spec"]["group"] for d in by_kind.get("CustomResourceDefinition", {}).values()}
for g in ("source", "kustomize", "helm", "notification", "image"):
    if f"{g}.toolkit.fluxcd.io" not in groups:
        errors.append(f"no CRD of {g}.toolkit.fluxcd.io")
if errors:
    sys.exit("check-flux: flux-install-manifests.sh output: " + "; ".join(errors))
print(f"  {len(docs)} objects, {len(by_kind['CustomResourceDefinition'])} CRDs, images {registry}/NAME:PIN")
PY

# The local node's Loki and kube-prometheus-stack: their charts come from Go modules
# (scripts/loki-chart.sh, scripts/kps-chart.sh), so unlike the other remote charts they can be
# rendered here, with the values the local entry gives them. Everything they render must be valid,
# and their only images the ones this repository builds (scripts/images.sh build loki / monitoring):
# anything else would be an image the offline node cannot pull.
# local_chart NAME CHART_TGZ WANT_IMAGE...: the local HelmRelease monitoring/NAME (chartRef the
# OCIRepository NAME) rendered by helm template -> its images == WANT_IMAGE..., kubeconform.
local_chart() {
  local name=$1 chart=$2 images
  shift 2
  python3 - "$work/out/local/ks-infra-controllers.yaml" "$work/$name-values.yaml" "$name" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
name = sys.argv[3]
hr = [d for d in docs if d["kind"] == "HelmRelease" and d["metadata"]["name"] == name]
if len(hr) != 1 or hr[0]["metadata"]["namespace"] != "monitoring":
    sys.exit(f"check-flux: the local infra-controllers must hold the HelmRelease monitoring/{name}")
if (hr[0]["spec"].get("chartRef") or {}) != {"kind": "OCIRepository", "name": name}:
    sys.exit(f"check-flux: the local {name} release must use the OCIRepository {name} (the node's registry)")
yaml.safe_dump(hr[0]["spec"].get("values") or {}, open(sys.argv[2], "w", encoding="utf-8"))
PY
  helm template "$name" "$chart" --namespace monitoring --kube-version "$PLATFORM_KUBE_VERSION" \
    -f "$work/$name-values.yaml" >"$work/$name-rendered.yaml"
  # Pod templates' containers, the operator's config-reloader argument and the operator's
  # Prometheus/Alertmanager resources' spec.image: every image the release makes the node pull.
  images=$(python3 - "$work/$name-rendered.yaml" <<'PY' | sort -u
import sys, yaml
def pods(d):
    spec = d.get("spec") or {}
    if d["kind"] == "Pod":
        yield spec
    elif d["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec:
        yield spec["template"]["spec"]
for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")):
    d = d or {"kind": ""}
    if d["kind"] in ("Prometheus", "Alertmanager", "ThanosRuler", "PrometheusAgent"):
        print(d["spec"]["image"])
    for pod in pods(d):
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            print(c["image"])
            for a in c.get("args") or []:
                if a.startswith("--prometheus-config-reloader="):
                    print(a.split("=", 1)[1])
PY
  )
  if [[ "$images" != "$(printf '%s\n' "$@" | sort -u)" ]]; then
    echo "check-flux: $name's chart with the local values renders images '${images//$'\n'/ }', want only $*" >&2
    exit 1
  fi
  "$KUBECONFORM" "$work/$name-rendered.yaml"
  say "  $(grep -c '^kind:' "$work/$name-rendered.yaml") objects; images: ${images//$'\n'/ }"
}
say "Loki's chart on the local node: helm template with the rendered local values -> images, kubeconform"
loki_chart=$("$OUTRIGGER_ROOT/scripts/loki-chart.sh" "$work/loki-chart")
local_chart loki "$loki_chart" "docker.io/grafana/loki:${LOKI_VERSION#v}"
say "kube-prometheus-stack's chart on the local node: the same"
kps_chart=$("$OUTRIGGER_ROOT/scripts/kps-chart.sh" "$work/kps-chart")
local_chart kube-prometheus-stack "$kps_chart" \
  "quay.io/prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION" \
  "quay.io/prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION" \
  "quay.io/prometheus/prometheus:$PROMETHEUS_VERSION-distroless" \
  "quay.io/prometheus/alertmanager:$ALERTMANAGER_VERSION" \
  "registry.k8s.io/kube-state-metrics/kube-state-metrics:$KUBE_STATE_METRICS_VERSION"

say "server-side dry run on a real kube-apiserver (dryRun=All, fieldValidation=Strict)"
if with_kube_api; then
  "$PLATFORM_CHECKS" dryrun "$KUBE_STATE" "${rendered[@]}"
fi

say "Flux API versions (sources + rendered)"
mapfile -t flux_sources < <(find flux -name '*.yaml' -not -name '.yamllint.yaml' | sort)
"$PLATFORM_CHECKS" flux-apis "${flux_sources[@]}" "${rendered[@]}"

say "node-pool placement"
"$PLATFORM_CHECKS" placement "$work/out"

say "self-test: the checks must reject a broken tree"
"$PLATFORM_CHECKS" selftest "$work/out"

# Skipped checkov checks, each on purpose (the rendered cluster output; the charts' own checks
# run in check-charts-platform.sh / check-charts-app.sh with their own reasoning):
#   CKV_K8S_11 CPU limits: CFS throttling hurts tail latency of the proxy and the agent; requests
#              reserve CPU for scheduling, memory limits are set everywhere.
#   CKV_K8S_15 imagePullPolicy Always: tags are immutable semver releases promoted by Flux policies.
#   CKV_K8S_43 image digest: promotion is by signed semver tag (image automation), not digest.
#   The agent DaemonSet's host access is deliberate and documented in charts/outrigger/README.md:
#   CKV_K8S_19 (hostNetwork), CKV_K8S_23 (root: /var/log/pods is root:root 0640),
#   CKV_K8S_40 (high UID, same reason).
# The podinfo stand-in is not scanned: it only models what the post-renderer touches.
say "checkov (kubernetes) on the rendered HelmRelease output of the charts in this repository"
mkdir -p "$work/checkov"
for f in "$work"/out/*/hr-*.yaml; do cp "$f" "$work/checkov/$(basename "$(dirname "$f")")-$(basename "$f")"; done
checkov --directory "$work/checkov" --framework kubernetes --quiet --compact --skip-download \
  --skip-check CKV_K8S_11,CKV_K8S_15,CKV_K8S_43,CKV_K8S_19,CKV_K8S_23,CKV_K8S_40
say "ok"
