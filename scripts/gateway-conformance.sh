#!/usr/bin/env bash
# make gateway-conformance (issue 18, item 4): the official Gateway API conformance suite
# (sigs.k8s.io/gateway-api/conformance $GATEWAY_API_VERSION, GATEWAY-HTTP profile) against
# `outrigger-proxy gateway` on the local node.
#
#   images    scripts/images.sh build proxy gateway-conformance (the proxy image; echo-basic and
#             coredns from the binaries scripts/tools.sh step `gateway` built), cached
#   up        scripts/cluster.sh up (from nothing, like the other e2e scripts: the host is compared
#             with its state before `up`); the proxy pushed as outrigger-proxy:TAG, echo-basic and
#             coredns under every registry.k8s.io name the suite's GATEWAY-HTTP manifests use (the
#             node's containerd mirrors registry.k8s.io to its registry)
#   install   charts/outrigger with gateway.enabled=true and only the gateway (agent and injector
#             off), the Gateway API CRDs from the chart's crds/, the Gateways' Services of type
#             ClusterIP (no load balancer controller, no cluster DNS here; the controller makes
#             one per Gateway, each its own address); the gateway pods must become Ready (the run goes on either way, so the suite's own verdict shows
#             what is missing)
#   suite     the suite's test binary inside the node's network namespace (Gateway addresses are
#             ClusterIPs there), --gateway-class=outrigger --conformance-profiles=GATEWAY-HTTP,
#             the claimed features (GATEWAY_FEATURES below) as --supported-features, the report to
#             target/cluster-e2e/gateway-conformance-report.yaml
#   down      always (trap); the host must be as before `up`
#
# Prints one line per conformance test and the verdict; writes
# target/cluster-e2e/gateway-conformance/summary.json (with each phase's seconds) and merges it into
# target/cluster-e2e/summary.json under "gateway_conformance". Exits non-zero unless the report
# says every core test passed and the host is clean. Root, the toolchain (scripts/tools.sh: apt go
# cluster gateway) and Debian's podman. docs/gateway.md, "Conformance".
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=scripts/lib/node-e2e.sh
source "$OUTRIGGER_ROOT/scripts/lib/node-e2e.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"
cd "$OUTRIGGER_ROOT"

OUT=$OUTRIGGER_ROOT/target/cluster-e2e/gateway-conformance
REPORT=$OUTRIGGER_ROOT/target/cluster-e2e/gateway-conformance-report.yaml
SUMMARY=$OUTRIGGER_ROOT/target/cluster-e2e/summary.json
HELPER=$OUTRIGGER_ROOT/tests/cluster/gateway_conformance.py
SYSTEM=outrigger-system
REGISTRY=localhost:5000
READY_TIMEOUT=${OUTRIGGER_GATEWAY_READY_TIMEOUT:-180}
SUITE_TIMEOUT=${OUTRIGGER_GATEWAY_SUITE_TIMEOUT:-60m}
# Extra suite flags for debugging one test, e.g. "-run-test=HTTPRouteSimpleSameNamespace
# -cleanup-test-resources=false" (word-split; the verdict still needs every core test).
read -r -a SUITE_ARGS <<<"${OUTRIGGER_GATEWAY_SUITE_ARGS:-}"
# What the gateway claims: the GATEWAY-HTTP core features and the extended ones it implements.
# One list; drop an entry here to stop claiming it (the suite then skips its tests).
GATEWAY_FEATURES=(
  Gateway HTTPRoute ReferenceGrant
  HTTPRouteQueryParamMatching HTTPRouteMethodMatching HTTPRouteResponseHeaderModification
  HTTPRouteHostRewrite HTTPRoutePathRewrite HTTPRouteSchemeRedirect HTTPRoutePathRedirect
  HTTPRoutePortRedirect HTTPRouteRequestTimeout HTTPRouteBackendTimeout
)
# The implementation, as the report states it.
ORGANIZATION=outrigger-mesh
PROJECT=outrigger
PROJECT_URL=https://github.com/outrigger-mesh/outrigger
CONTACT=https://github.com/outrigger-mesh/outrigger/issues

say() { printf 'gateway-conformance: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need() {
  local t
  [[ $(id -u) -eq 0 ]] || { skip_or_fail "make gateway-conformance" "needs root (the cluster and the image builds)"; exit 0; }
  for t in helm kubectl python3 jq podman mmdebstrap nsenter go gateway-conformance gateway-echo-basic coredns; do
    command -v "$t" >/dev/null ||
      { skip_or_fail "make gateway-conformance" "$t not installed (scripts/tools.sh apt go cluster gateway)"; exit 0; }
  done
}

# phase NAME START: NAME took SECONDS - START seconds (into the summary's phases_s).
phase() {
  jq --arg n "$1" --argjson s "$(( SECONDS - $2 ))" '. + {($n): $s}' "$OUT/phases.json" >"$OUT/phases.json.new"
  mv "$OUT/phases.json.new" "$OUT/phases.json"
  say "$1: $(( SECONDS - $2 )) s"
}

GATEWAY_READY=false
finish() {
  local rc=$? start=$SECONDS
  trap - EXIT
  set +e
  [[ $rc -eq 0 ]] || say "a step failed (exit $rc); diagnostics in $OUT/logs/"
  if [[ -f "$STATE/holder.pid" ]]; then
    diagnostics
    gateway_diagnostics
  fi
  stop_bg
  host_clean_after_down >"$OUT/host-clean.json"
  phase down "$start"
  python3 "$HELPER" summary --report "$REPORT" --log "$OUT/logs/suite.log" --phases "$OUT/phases.json" \
    --gateway-ready "$GATEWAY_READY" --host-clean "$OUT/host-clean.json" --out "$OUT/summary.json" --merge "$SUMMARY" ||
    rc=1
  say "summary: $OUT/summary.json, report: $REPORT ($SECONDS s)"
  exit "$rc"
}

# gateway_diagnostics: the gateway's pods, logs and the Gateway API objects' status.
gateway_diagnostics() {
  {
    echo "## gateway pods"; k -n "$SYSTEM" get pods -l app.kubernetes.io/component=gateway -o wide
    # The node has no DNS for the kubelet's name, so `kubectl logs` cannot reach it: the CRI log
    # files under the node's /var/log/pods instead.
    echo "## gateway logs"
    local f
    for f in "$STATE"/root/var/log/pods/"$SYSTEM"_outrigger-gateway-*/*/*.log; do
      [[ -f "$f" ]] || continue
      echo "### ${f#"$STATE"/root}"
      tail -n 200 "$f"
    done
    echo "## the Gateways' Services"; k -n "$SYSTEM" get services -l app.kubernetes.io/managed-by=outrigger-gateway -o wide --show-labels
    echo "## gatewayclasses, gateways, httproutes"; k get gatewayclasses,gateways,httproutes -A -o yaml
  } >"$OUT/logs/gateway.log" 2>&1 || true
}

archive_of() { jq -r --arg n "$1" '.images[] | select(.name == $n) | .archive' "$IMAGES/images.json"; }
tag_of() { jq -r --arg n "$1" '.images[] | select(.name == $n) | .tag' "$IMAGES/images.json"; }

# conformance_module: the conformance module's directory, from the Go module cache only (scripts/tools.sh
# step `gateway` put it there when it built the suite).
conformance_module() {
  local dir
  dir=$(cd "$OUTRIGGER_ROOT/tools/gateway-conformance" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
    go mod download -json "sigs.k8s.io/gateway-api/conformance@$GATEWAY_API_VERSION" 2>/dev/null | jq -r '.Dir // empty')
  [[ -n "$dir" && -f "$dir/base/manifests.yaml" ]] ||
    die "sigs.k8s.io/gateway-api/conformance@$GATEWAY_API_VERSION is not in the Go module cache: run scripts/tools.sh gateway"
  printf '%s' "$dir"
}

gateway_pods_ready() {
  k -n "$SYSTEM" get pods -l app.kubernetes.io/component=gateway -o json | jq -e --argjson n 2 '
    [.items[] | select(.metadata.deletionTimestamp == null)] as $live
    | ($live | length) == $n and all($live[]; any(.status.conditions[]?; .type == "Ready" and .status == "True"))' \
    >/dev/null
}

gateway_crashlooping() {
  k -n "$SYSTEM" get pods -l app.kubernetes.io/component=gateway -o json |
    jq -e 'any(.items[].status.containerStatuses[]?; .state.waiting.reason == "CrashLoopBackOff")' >/dev/null
}

# ---- setup --------------------------------------------------------------------------------------

need
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
rm -rf "$OUT" "$REPORT"
mkdir -p "$OUT"/{logs,pids}
echo '{}' >"$OUT/phases.json"
# A run left over from an interrupted test would make the snapshot wrong: start from nothing.
"$CLUSTER" down >"$OUT/logs/cluster.log" 2>&1
host_snapshot "$OUT/host-before" "$STATE"
trap finish EXIT
module=$(conformance_module)

# The images the suite will pull, each mapped to the archive built here; anything else stops the run
# here rather than as an ImagePullBackOff inside the suite.
pushes=()
while IFS= read -r image; do
  case $image in
    "$GATEWAY_ECHO_IMAGE":*) pushes+=("gateway-echo-basic ${image#registry.k8s.io/}") ;;
    "$COREDNS_IMAGE:$COREDNS_VERSION") pushes+=("coredns ${image#registry.k8s.io/}") ;;
    *) die "the suite's manifests name $image, which nothing here builds (tools/versions.sh, tests/cluster/gateway_conformance.py)" ;;
  esac
done < <(python3 "$HELPER" images "$module")

start=$SECONDS
say "images: scripts/images.sh build proxy gateway-conformance (log $OUT/logs/images.log)"
scripts/images.sh build proxy gateway-conformance >"$OUT/logs/images.log" 2>&1 ||
  { tail -n 30 "$OUT/logs/images.log" >&2; die "image build failed"; }
phase images "$start"

start=$SECONDS
"$CLUSTER" up >>"$OUT/logs/cluster.log" 2>&1 || { tail -n 30 "$OUT/logs/cluster.log" >&2; die "cluster up failed"; }
cp "$STATE/ns-ids" "$OUT/ns-ids"
phase up "$start"

start=$SECONDS
T_PROXY=$(tag_of outrigger-proxy)
"$CLUSTER" push "$(archive_of outrigger-proxy)" "outrigger-proxy:$T_PROXY" >>"$OUT/logs/cluster.log" 2>&1
for p in "${pushes[@]}"; do
  read -r name ref <<<"$p"
  "$CLUSTER" push "$(archive_of "$name")" "$ref" >>"$OUT/logs/cluster.log" 2>&1 || die "push of $ref failed"
  say "pushed $name as registry.k8s.io/$ref (node registry)"
done
phase push "$start"

start=$SECONDS
say "install: charts/outrigger, gateway only, ClusterIP Services per Gateway (log $OUT/logs/helm.log)"
k create namespace "$SYSTEM" >/dev/null
helm_ install outrigger "$OUTRIGGER_ROOT/charts/outrigger" -n "$SYSTEM" --timeout 5m \
  --set fullnameOverride=outrigger \
  --set agent.enabled=false --set rbac.create=false --set injector.enabled=false \
  --set serviceMonitor.enabled=false --set podMonitor.enabled=false \
  --set dashboards.enabled=false --set prometheusRules.enabled=false \
  --set gateway.enabled=true \
  --set gateway.image.repository=$REGISTRY/outrigger-proxy --set "gateway.image.tag=$T_PROXY" \
  --set gateway.service.type=ClusterIP \
  --set-json 'gateway.service.annotations={}' \
  --set-json 'gateway.nodeSelector={"doks.digitalocean.com/node-pool":null}' --set-json gateway.tolerations='[]' \
  >>"$OUT/logs/helm.log" 2>&1 || die "helm install outrigger failed ($OUT/logs/helm.log)"
k get crd gatewayclasses.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io >/dev/null ||
  die "the chart's Gateway API CRDs are not installed"
for ((i = 0; i < READY_TIMEOUT; i += 2)); do
  if gateway_pods_ready; then GATEWAY_READY=true; break; fi
  # A gateway that exits at start (a flag it does not know, a crash) will not get Ready by waiting.
  if gateway_crashlooping; then say "a gateway container is in CrashLoopBackOff"; break; fi
  sleep 2
done
phase install "$start"
if [[ $GATEWAY_READY == true ]]; then
  say "gateway pods Ready"
else
  gateway_diagnostics
  say "the gateway pods are not Ready ($OUT/logs/gateway.log); running the suite anyway"
  k -n "$SYSTEM" get pods -l app.kubernetes.io/component=gateway -o wide >&2 || true
fi

start=$SECONDS
features=$(IFS=,; echo "${GATEWAY_FEATURES[*]}")
version=$(jq -r '.images[] | select(.name == "outrigger-proxy") | .version' "$IMAGES/images.json")
say "suite: GATEWAY-HTTP, features $features (log $OUT/logs/suite.log)"
rc=0
node_run env KUBECONFIG="$STATE/pki/admin.kubeconfig" HOME="$OUT" \
  "$(command -v gateway-conformance)" -test.v -test.run '^TestConformance$' -test.timeout "$SUITE_TIMEOUT" \
  -gateway-class=outrigger -conformance-profiles=GATEWAY-HTTP -supported-features="$features" \
  -report-output="$REPORT" -organization="$ORGANIZATION" -project="$PROJECT" -url="$PROJECT_URL" \
  -version="v$version" -contact="$CONTACT" "${SUITE_ARGS[@]}" >"$OUT/logs/suite.log" 2>&1 || rc=$?
phase suite "$start"
# Conformance tests are TestConformance's direct subtests (their own subtests are the requests).
say "suite exited $rc; $(grep -cE -- '--- PASS: TestConformance/[^/ ]+ ' "$OUT/logs/suite.log" || true) tests passed," \
  "$(grep -cE -- '--- FAIL: TestConformance/[^/ ]+ ' "$OUT/logs/suite.log" || true) failed," \
  "$(grep -cE -- '--- SKIP: TestConformance/[^/ ]+ ' "$OUT/logs/suite.log" || true) skipped"
if [[ ! -f "$REPORT" ]]; then
  say "no report written; the end of the suite's log:"
  tail -n 15 "$OUT/logs/suite.log" >&2
fi
