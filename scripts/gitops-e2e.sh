#!/usr/bin/env bash
# make gitops-e2e (issue 20): Flux reconciles this repository's own tree on the local node, and a
# commit becomes a zero-downtime rollout, offline.
#
#   images    scripts/images.sh build (the daemons, the app, podinfo, and the Flux controllers,
#             cert-manager, Loki and the monitoring stack from the toolchain's binaries), cached
#   up        scripts/cluster.sh up; each image pushed under the name and tag the local cluster
#             entry pulls (ghcr.io/..., quay.io/... and docker.io/... through containerd's mirrors
#             of the node's registry), the Flux controllers as fluxcd/NAME:PIN, cert-manager as
#             jetstack/cert-manager-NAME:VERSION, Loki as grafana/loki:VERSION, the monitoring
#             images under kube-prometheus-stack's names (quay.io/prometheus/..., quay.io/
#             prometheus-operator/..., registry.k8s.io/kube-state-metrics/...), podinfo's,
#             cert-manager's, Loki's and kube-prometheus-stack's charts as OCI artifacts
#   git       a clone of HEAD with one local commit (the run's SOPS-encrypted test Secret, for a
#             throw-away age key made here), served as a bare repository by
#             scripts/lib/git-http-server.py on the node's address (push enabled, for Flux)
#   flux      scripts/flux-install-manifests.sh (the `flux install` layout) on fixed Service IPs
#             (no cluster DNS here), the sops-age Secret, and the sync objects for
#             ./flux/clusters/local; every Kustomization and HelmRelease must become Ready, the
#             Kustomizations in dependency order (secrets -> controllers -> configs -> apps), and
#             the HelmReleases along their dependsOn chains (Gateway API CRDs -> cert-manager ->
#             outrigger; Loki -> outrigger, whose agent ships to it; kube-prometheus-stack ->
#             outrigger, whose PodMonitor/ServiceMonitor need its CRDs)
#   checks    the apps answer through outrigger's gateway (the public Gateway): plain HTTP with each
#             route's Host header, HTTPS with SNI and the local CA (cert-manager's gateway-shim
#             issued the listener certificates), an unknown host 404
#   loop      under steady load through the gateway (the cluster e2e's load generator, the app's
#             Host header):
#             commit an app change -> the release build (scripts/images.sh, the release
#             workflow's Dockerfile and build args) -> push the new semver tag -> Flux's image
#             automation commits it to the local repository -> helm-controller rolls the app;
#             zero failed requests; commit-to-Ready time
#   logs      the app's request lines of that load, shipped by the agent, queried back from Loki
#             (query_range on its fixed Service address, from inside the node's namespace)
#   metrics   the local kube-prometheus-stack's Prometheus (fixed Service address): every Grafana
#             dashboard query of charts/outrigger (kube-state-metrics' included) and the golden
#             metrics of every meshed pod, scraped through the tree's PodMonitor/ServiceMonitors;
#             its Alertmanager's webhook (the always-firing LocalWatchdog) at the local receiver
#   bad image a release whose pods never get Ready: the rollout stalls with the old pods serving,
#             zero failed requests, and Flux's alert reaches the local Alertmanager stand-in
#   down      always (trap); the host must be as before `up`
#
# Writes target/cluster-e2e/gitops/summary.json and merges it into target/cluster-e2e/summary.json
# under "gitops"; exits non-zero on any failure. Root, the toolchain (scripts/tools.sh: cluster,
# flux, certmanager, loki, monitoring, go steps; age, sops) and Debian's podman. docs/cluster.md,
# "GitOps on the local node".
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=scripts/lib/node-e2e.sh
source "$OUTRIGGER_ROOT/scripts/lib/node-e2e.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"
cd "$OUTRIGGER_ROOT"

OUT=$OUTRIGGER_ROOT/target/cluster-e2e/gitops
SUMMARY=$OUTRIGGER_ROOT/target/cluster-e2e/summary.json
GITOPS=$OUTRIGGER_ROOT/tests/cluster/gitops.py
E2E=$OUTRIGGER_ROOT/tests/cluster/e2e.py
LOADGEN=$OUTRIGGER_ROOT/tests/cluster/loadgen.py
RATE=${OUTRIGGER_E2E_RATE:-200}
# How long Flux may take to bring the whole entry up, and one release to go through the loop.
READY_TIMEOUT=${OUTRIGGER_GITOPS_READY_TIMEOUT:-900}
LOOP_TIMEOUT=${OUTRIGGER_GITOPS_LOOP_TIMEOUT:-420}
# scripts/cluster.sh's node address; flux/clusters/local names it for the registry and receiver.
NODE_IP=10.240.0.10
GIT_PORT=8418
ALERT_PORT=9093
# Free addresses of the Service range (10.242.0.0/24) for the Services other controllers address.
SOURCE_IP=10.242.0.200
EVENTS_IP=10.242.0.201
# Loki's Service address in the tree (flux/infrastructure/local/controllers/loki-source.yaml).
LOKI_IP=10.242.0.12
LOKI_URL=http://$LOKI_IP:3100
# kube-prometheus-stack's Prometheus Service address in the tree
# (flux/infrastructure/local/controllers/kube-prometheus-stack-values.yaml).
PROM_IP=10.242.0.14
PROM_URL=http://$PROM_IP:9090
# HelmReleases that must become Ready in this order (their dependsOn chains in infra-controllers):
# the Gateway API CRDs before cert-manager (gateway-shim) before the Outrigger release (injector
# certificate); Loki before the Outrigger release (its agent ships there).
HR_CHAINS=("outrigger-system/gateway-api-crds,cert-manager/cert-manager,outrigger-system/outrigger"
  "monitoring/loki,outrigger-system/outrigger" "monitoring/kube-prometheus-stack,outrigger-system/outrigger")
# outrigger's gateway: the public Gateway's fixed address, which its Service gets (spec.addresses in
# flux/infrastructure/local/configs/kustomization.yaml), and the apps' hostnames on the local entry
# (flux/clusters/local, domain).
GATEWAY_IP=10.242.0.13
DOMAIN=local.outrigger.invalid
APP_HOST=hello.$DOMAIN
PODINFO_HOST=podinfo.$DOMAIN
APP_NS=hello
APP=flask-hello-world
REPLICAS=2
KS_ORDER=cluster-secrets,infra-controllers,infra-configs,apps

say() { printf 'gitops-e2e: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need() {
  local t
  [[ $(id -u) -eq 0 ]] || { skip_or_fail "make gitops-e2e" "needs root (the cluster and the image builds)"; exit 0; }
  for t in git age-keygen sops helm kubectl kustomize openssl python3 jq podman nsenter curl base64 \
    source-controller kustomize-controller helm-controller notification-controller \
    image-reflector-controller image-automation-controller cert-manager-controller loki \
    prometheus-operator prometheus-config-reloader prometheus3 alertmanager kube-state-metrics; do
    command -v "$t" >/dev/null || { skip_or_fail "make gitops-e2e" "$t not installed (scripts/tools.sh)"; exit 0; }
  done
}

# part NAME JSON: one part of the result; the summary joins them.
part() { printf '%s\n' "$2" >"$OUT/parts/$1.json"; }

finish() {
  local rc=$?
  trap - EXIT
  set +e
  [[ $rc -eq 0 ]] || say "a step failed (exit $rc); diagnostics in $OUT/logs/"
  if [[ -f "$STATE/holder.pid" ]]; then
    diagnostics
    {
      k get gitrepositories,ocirepositories,kustomizations,helmreleases,imagerepositories,imagepolicies,imageupdateautomations -A
      k -n flux-system logs deploy/image-automation-controller --tail=40
      k -n flux-system logs deploy/helm-controller --tail=40
    } >"$OUT/logs/flux.log" 2>&1
  fi
  stop_bg
  part host-clean "$(host_clean_after_down)"
  [[ -f "$OUT/parts/steps.json" ]] || part steps "$(jq -n --arg d "stopped at: ${STEP:-setup}" '{pass: false, detail: $d}')"
  jq -s --argjson seconds "$SECONDS" --arg rc "$rc" '
    (map({(.key): .value}) | add) as $p
    | {pass: ($rc == "0" and all(.[].value; .pass != false)), seconds: $seconds} + $p' \
    < <(for f in "$OUT"/parts/*.json; do jq -c --arg k "$(basename "$f" .json)" '{key: $k, value: .}' "$f"; done) \
    >"$OUT/summary.json" || rc=1
  python3 "$GITOPS" summary --gitops "$OUT/summary.json" --out "$SUMMARY" || rc=1
  [[ "$(jq -r .pass "$OUT/summary.json")" == true ]] || rc=1
  say "$(jq -c '{pass, seconds, flux: .flux.seconds_to_ready, loop: (.loop | {commit_to_ready_s, sent: .load.sent, failed: .load.failed}), loki_lines: .logs.request_lines, gateway: .flux.gateway, bad_image: (.bad_image | {held, alert: (.alerts | length), sent: .load.sent, failed: .load.failed}), host_clean: ."host-clean".pass}' "$OUT/summary.json" 2>/dev/null)"
  say "summary: $OUT/summary.json ($SECONDS s)"
  exit "$rc"
}

# ---- helpers --------------------------------------------------------------------------------------

archive_of() { jq -r --arg n "$1" '.images[] | select(.name == $n) | .archive' "$IMAGES/images.json"; }
now() { date +%s.%N; }
since() { python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))' "$1" "$(now)"; }
work_git() { git -C "$WORK" "$@"; }
# push_work: the work clone's main to the local Git server (reachable inside the node only).
push_work() { node_run git -C "$WORK" push -q origin main; }
# next_patch X.Y.Z: X.Y.(Z+1)
next_patch() { awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 + 1 }' <<<"$1"; }

# app_pods_on TAG: exactly REPLICAS live app pods, all Ready, all running image tag TAG.
app_pods_on() { settled "$APP_NS" "$APP" "$REPLICAS" "$1"; }
# held GOOD BAD: REPLICAS live app pods on GOOD, all Ready, and no pod on BAD Ready.
held_on() {
  k -n "$APP_NS" get pods -l "app.kubernetes.io/instance=$APP" -o json | jq -e --argjson n "$REPLICAS" --arg good ":$1" --arg bad ":$2" '
    def on($t): any(.spec.containers[]; .image | endswith($t));
    def ready: any(.status.conditions[]?; .type == "Ready" and .status == "True");
    [.items[] | select(.metadata.deletionTimestamp == null)] as $live
    | ([$live[] | select(on($good) and ready)] | length) == $n
    and ([.items[] | select(on($bad) and ready)] | length) == 0' >/dev/null
}
# pod_on TAG: some app pod runs image tag TAG (Ready or not).
pod_on() {
  k -n "$APP_NS" get pods -l "app.kubernetes.io/instance=$APP" -o json |
    jq -e --arg tag ":$1" 'any(.items[]; any(.spec.containers[]; .image | endswith($tag)))' >/dev/null
}
# automation_committed TAG: Flux's image automation pushed a commit that sets TAG.
automation_committed() {
  [[ "$(git -C "$BARE" log -1 --format=%an main)" == fluxcdbot ]] &&
    git -C "$BARE" show main -- flux/apps/local/flask-hello-world-values.yaml | grep -qE "^\+ +tag: \"?${1//./\\.}\"? "
}
# wait_until TIMEOUT WHAT CMD...: poll CMD every 2 s.
wait_until() {
  local timeout=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    (( SECONDS - start < timeout )) || { say "timed out after $timeout s waiting for $what"; return 1; }
    sleep 2
  done
}

# release NAME VERSION: commit what the caller changed in the work clone with the app's release
# version bumped (as release-please's release PR does), push it, build the image the release
# workflow would from that commit, push it as the new semver tag. Sets COMMIT_AT, BUILD_S.
release() {
  local name=$1 version=$2 start archive
  # Flux's automation commits land on main between releases, as a bot's commits do upstream.
  node_run git -C "$WORK" pull -q --rebase --autostash origin main >>"$OUT/logs/git-client.log" 2>&1
  jq --arg v "$version" '."apps/flask-hello-world" = $v' "$WORK/.release-please-manifest.json" >"$OUT/manifest.json"
  mv "$OUT/manifest.json" "$WORK/.release-please-manifest.json"
  work_git add -A
  work_git commit -q -m "$name (flask-hello-world $version)"
  COMMIT_AT=$(now)
  push_work
  start=$(now)
  OUTRIGGER_IMAGES_DIR=$IMAGES "$WORK/scripts/images.sh" build flask-hello-world >>"$OUT/logs/images.log" 2>&1 ||
    die "release build of $version failed ($OUT/logs/images.log)"
  archive=$(archive_of flask-hello-world)
  "$CLUSTER" push "$archive" "outrigger-mesh/flask-hello-world:$version" >>"$OUT/logs/cluster.log" 2>&1
  BUILD_S=$(since "$start")
  say "$version: committed, built and pushed in $(since "$COMMIT_AT") s (build $BUILD_S s)"
}

# ---- setup ---------------------------------------------------------------------------------------

need
rm -rf "$OUT"
mkdir -p "$OUT"/{logs,pids,load,parts,git,secrets,flux,charts}
"$CLUSTER" down >"$OUT/logs/cluster.log" 2>&1
host_snapshot "$OUT/host-before" "$STATE"
trap finish EXIT

STEP=images
say "images: scripts/images.sh build (log $OUT/logs/images.log)"
start_s=$SECONDS
scripts/images.sh build proxy agent injector flask-hello-world podinfo flux cert-manager loki monitoring >"$OUT/logs/images.log" 2>&1 ||
  { tail -n 30 "$OUT/logs/images.log" >&2; die "image build failed"; }
say "images built in $(( SECONDS - start_s )) s"

STEP=up
"$CLUSTER" up >>"$OUT/logs/cluster.log" 2>&1 || { tail -n 30 "$OUT/logs/cluster.log" >&2; die "cluster up failed"; }
cp "$STATE/ns-ids" "$OUT/ns-ids"
[[ "$(node_run ip -4 -o addr show node0)" == *" $NODE_IP/"* ]] || die "the node's address is not $NODE_IP (scripts/cluster.sh changed?)"
# The one node plays the apps pool, so the apps keep the placement they have on DOKS; the
# infrastructure the local entry runs drops its infra-pool selector instead (a local swap).
k label node --all doks.digitalocean.com/node-pool=apps >/dev/null
while IFS=$'\t' read -r image tag; do
  "$CLUSTER" push "$(archive_of "$image")" "outrigger-mesh/$image:$tag" >>"$OUT/logs/cluster.log" 2>&1
done < <(python3 "$GITOPS" tags)
"$CLUSTER" push "$(archive_of podinfo)" "stefanprodan/podinfo:$(jq -r '.images[] | select(.name == "podinfo") | .version' "$IMAGES/images.json")" \
  >>"$OUT/logs/cluster.log" 2>&1
for spec in "${FLUX_CONTROLLERS[@]}"; do
  "$CLUSTER" push "$(archive_of "flux-${spec%@*}")" "fluxcd/${spec%@*}:${spec#*@}" >>"$OUT/logs/cluster.log" 2>&1
done
helm package "$IMAGES/charts/podinfo" -d "$OUT/charts" >/dev/null
node_run helm push "$(ls "$OUT"/charts/podinfo-*.tgz)" "oci://$NODE_IP:5000/stefanprodan/charts" --plain-http \
  >>"$OUT/logs/cluster.log" 2>&1 || die "helm push of podinfo's chart failed"
# The chart's image references are quay.io/jetstack/cert-manager-NAME:APPVERSION (the v is part of
# the tag), mirrored to the node's registry like ghcr.io.
for name in "${CERTMANAGER_BINARIES[@]}"; do
  "$CLUSTER" push "$(archive_of "cert-manager-$name")" "jetstack/cert-manager-$name:$CERTMANAGER_VERSION" \
    >>"$OUT/logs/cluster.log" 2>&1
done
node_run helm push "$IMAGES/charts/cert-manager-$CERTMANAGER_VERSION.tgz" "oci://$NODE_IP:5000/jetstack/charts" --plain-http \
  >>"$OUT/logs/cluster.log" 2>&1 || die "helm push of cert-manager's chart failed"
# Loki's chart values name docker.io/grafana/loki:TAG (no v), mirrored to the node's registry; its
# chart is the one scripts/images.sh packaged without the remote subcharts.
"$CLUSTER" push "$(archive_of loki)" "grafana/loki:${LOKI_VERSION#v}" >>"$OUT/logs/cluster.log" 2>&1
node_run helm push "$IMAGES/charts/loki-$LOKI_CHART_VERSION.tgz" "oci://$NODE_IP:5000/grafana/charts" --plain-http \
  >>"$OUT/logs/cluster.log" 2>&1 || die "helm push of Loki's chart failed"
# kube-prometheus-stack's values name quay.io/prometheus/..., quay.io/prometheus-operator/... and
# registry.k8s.io/kube-state-metrics/... (both registries mirrored to the node's); its chart is the
# one scripts/images.sh packaged without the remote subcharts.
for ref in "prometheus-operator prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION" \
  "prometheus-config-reloader prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION" \
  "prometheus prometheus/prometheus:$PROMETHEUS_VERSION-distroless" \
  "alertmanager prometheus/alertmanager:$ALERTMANAGER_VERSION" \
  "kube-state-metrics kube-state-metrics/kube-state-metrics:$KUBE_STATE_METRICS_VERSION"; do
  "$CLUSTER" push "$(archive_of "${ref%% *}")" "${ref#* }" >>"$OUT/logs/cluster.log" 2>&1
done
node_run helm push "$IMAGES/charts/kube-prometheus-stack-$KPS_CHART_VERSION.tgz" "oci://$NODE_IP:5000/prometheus-community/charts" \
  --plain-http >>"$OUT/logs/cluster.log" 2>&1 || die "helm push of kube-prometheus-stack's chart failed"
grep -q "clusterIP: $PROM_IP\$" flux/infrastructure/local/controllers/kube-prometheus-stack-values.yaml ||
  die "Prometheus's Service address in the tree is not $PROM_IP (flux/infrastructure/local/controllers/kube-prometheus-stack-values.yaml)"
grep -q "clusterIP: $LOKI_IP\$" flux/infrastructure/local/controllers/loki-source.yaml ||
  die "Loki's Service address in the tree is not $LOKI_URL (flux/infrastructure/local/controllers/loki-source.yaml)"
grep -q "value: $GATEWAY_IP\$" flux/infrastructure/local/configs/kustomization.yaml ||
  die "the public Gateway's address in the tree is not $GATEWAY_IP (spec.addresses in flux/infrastructure/local/configs/kustomization.yaml)"
[[ "$(grep -c "domain: $DOMAIN\$" flux/clusters/local/apps.yaml flux/clusters/local/infrastructure.yaml | awk -F: '{ n += $2 } END { print n }')" == 2 ]] ||
  die "the local entry's domain is not $DOMAIN in both flux/clusters/local/apps.yaml and infrastructure.yaml"
say "cluster up, images and the podinfo, cert-manager, Loki and kube-prometheus-stack charts in the node's registry"

# Flux's alerts go to the Alertmanager stand-in on the node's address.
bg alerts python3 "$OUTRIGGER_ROOT/scripts/lib/alert-receiver.py" "$NODE_IP" "$ALERT_PORT" "$OUT/alerts.jsonl"

STEP=git
say "git: clone of HEAD + the run's encrypted Secrets, served on http://$NODE_IP:$GIT_PORT/outrigger.git"
[[ -z "$(git status --porcelain)" ]] || say "WARNING: uncommitted changes are not in the local repository (it clones HEAD)"
WORK=$OUT/git/work
BARE=$OUT/git/outrigger.git
git clone -q --no-local "$OUTRIGGER_ROOT" "$WORK"
work_git checkout -q -B main
work_git config user.name "gitops-e2e"
work_git config user.email "gitops-e2e@outrigger.invalid"
age-keygen -o "$OUT/secrets/age.agekey" 2>/dev/null
recipient=$(age-keygen -y "$OUT/secrets/age.agekey")
# The Secret staging and production keep in flux/secrets/ENV: Grafana's admin credentials (no
# Grafana runs here; the Secret is what proves kustomize-controller decrypts).
grafana_password=$(openssl rand -hex 24)
kubectl create --dry-run=client -o yaml secret generic grafana-admin -n monitoring \
  --from-literal=admin-user=admin --from-literal=admin-password="$grafana_password" >"$OUT/secrets/grafana-admin.yaml"
# sops runs outside the repository: the tree's .sops.yaml holds the staging/production rules only.
sops_dir=$(mktemp -d)
cp "$OUT/secrets/grafana-admin.yaml" "$sops_dir/plain.yaml"
(cd "$sops_dir" && sops --encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' \
  --input-type yaml --output-type yaml plain.yaml) >"$WORK/flux/secrets/local/grafana-admin.sops.yaml"
echo "  - grafana-admin.sops.yaml" >>"$WORK/flux/secrets/local/kustomization.yaml"
rm -rf "$sops_dir"
if grep -qF "$(printf '%s' "$grafana_password" | base64 -w0 | head -c 40)" "$WORK"/flux/secrets/local/*.sops.yaml; then
  die "the encrypted Secret holds the plaintext password"
fi
work_git add flux/secrets/local
work_git commit -q -m "local: this run's SOPS-encrypted test Secrets"
git clone -q --bare "$WORK" "$BARE"
git -C "$BARE" config http.receivepack true
work_git remote set-url origin "http://$NODE_IP:$GIT_PORT/outrigger.git"
bg git python3 "$OUTRIGGER_ROOT/scripts/lib/git-http-server.py" --listen "$NODE_IP:$GIT_PORT" --root "$OUT/git"
wait_until 30 "the Git server" node_run curl -fs --max-time 2 -o /dev/null "http://$NODE_IP:$GIT_PORT/healthz"
node_run git ls-remote "http://$NODE_IP:$GIT_PORT/outrigger.git" main >/dev/null || die "git ls-remote through the server failed"

STEP=flux
say "flux: install (scripts/flux-install-manifests.sh, images localhost:5000/fluxcd) and sync ./flux/clusters/local"
IMAGE_REGISTRY=localhost:5000/fluxcd scripts/flux-install-manifests.sh "$OUT/flux" >>"$OUT/logs/flux-install.log" 2>&1
python3 "$GITOPS" manifests "$OUT/flux/gotk-components.yaml" "$OUT/flux/install.yaml" --source-ip "$SOURCE_IP" --events-ip "$EVENTS_IP"
flux_start=$(now)
k apply --server-side -f "$OUT/flux/install.yaml" >>"$OUT/logs/flux-install.log"
k -n flux-system wait deployment --all --for=condition=Available --timeout=300s >>"$OUT/logs/flux-install.log" ||
  die "the Flux controllers did not become Available"
k -n flux-system create secret generic sops-age --from-file=age.agekey="$OUT/secrets/age.agekey" >/dev/null
cat >"$OUT/flux/sync.yaml" <<EOF
# What \`flux bootstrap\` commits as gotk-sync.yaml, pointed at the local Git server.
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 10s
  url: http://$NODE_IP:$GIT_PORT/outrigger.git
  ref: {branch: main}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 1m
  path: ./flux/clusters/local
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
EOF
k apply --server-side -f "$OUT/flux/sync.yaml" >>"$OUT/logs/flux-install.log"
flux_ready() {
  k get kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io -A -o json |
    python3 "$GITOPS" ready --order "$KS_ORDER" "${HR_CHAINS[@]/#/--hr-order=}" --out "$OUT/flux-ready.json"
}
# Kustomizations and HelmReleases appear as the chain goes on: wait for all four, then all Ready.
wait_until "$READY_TIMEOUT" "every Kustomization and HelmRelease Ready (see $OUT/flux-ready.json)" flux_ready || {
  part flux "$(jq '{pass: false, objects, in_order}' "$OUT/flux-ready.json")"
  die "Flux did not bring the local entry up"
}
flux_s=$(since "$flux_start")
say "flux: every object Ready $flux_s s after install; $(jq -r '[.objects[] | "\(.kind)/\(.name)"] | join(" ")' "$OUT/flux-ready.json")"

# What Ready means here: the decrypted Secret is the one made above, cert-manager issues, and both
# apps answer through the gateway.
STEP=checks
secret_ok=false
[[ "$(k -n monitoring get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d)" == "$grafana_password" ]] && secret_ok=true
# cert-manager issues on this node: the local CA chain of infra-configs, and the injector's serving
# certificate with its CA injected into the webhook by cainjector.
issued=false
[[ "$(k -n cert-manager get certificates.cert-manager.io local-ca -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True &&
  "$(k -n outrigger-system get certificates.cert-manager.io outrigger-injector -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True &&
  -n "$(k get mutatingwebhookconfiguration outrigger-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]] && issued=true
# The apps through outrigger's gateway. The listener certificates (hello-tls, podinfo-tls) are
# issued by cert-manager's gateway-shim from local-ca once the Gateway exists; the client trusts
# that CA only. Plain HTTP carries each route's Host header; HTTPS goes by SNI to the listener of
# that hostname; a host no route names must get the gateway's 404, not some app.
k -n cert-manager get secret local-ca -o jsonpath='{.data.ca\.crt}' | base64 -d >"$OUT/local-ca.crt"
listener_certs() {
  local c
  for c in hello-tls podinfo-tls; do
    [[ "$(k -n outrigger-system get certificates.cert-manager.io "$c" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]] || return 1
  done
}
gw_http() { node_run curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" "http://$GATEWAY_IP/" || true; }
gw_https() {
  node_run curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$OUT/local-ca.crt" \
    --resolve "$1:443:$GATEWAY_IP" "https://$1/" || true
}
gateway_answers() { [[ "$(gw_http "$APP_HOST")" == 200 && "$(gw_http "$PODINFO_HOST")" == 200 ]]; }
certs_ok=true
wait_until 120 "the Gateway's listener certificates (hello-tls, podinfo-tls) Ready" listener_certs || certs_ok=false
wait_until 60 "both apps through the gateway" gateway_answers || true
programmed=$(k -n outrigger-system get gateways.gateway.networking.k8s.io public -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status}' || true)
http_app=$(gw_http "$APP_HOST")
http_podinfo=$(gw_http "$PODINFO_HOST")
https_app=$(gw_https "$APP_HOST")
https_podinfo=$(gw_https "$PODINFO_HOST")
unrouted=$(gw_http "nobody.$DOMAIN")
part flux "$(jq --argjson s "$flux_s" --argjson secret "$secret_ok" --argjson issued "$issued" --argjson certs "$certs_ok" \
  --arg gw "$GATEWAY_IP" --arg programmed "$programmed" --arg ha "$http_app" --arg hp "$http_podinfo" \
  --arg sa "$https_app" --arg sp "$https_podinfo" --arg un "$unrouted" --arg app "$APP_HOST" --arg pod "$PODINFO_HOST" '
  {pass: (.all_ready and .in_order and $secret and $issued and $certs and $ha == "200" and $hp == "200"
          and $sa == "200" and $sp == "200" and $un == "404"),
   seconds_to_ready: $s, in_order: .in_order, sops_secret_decrypted: $secret, cert_manager_issued: $issued,
   gateway: {address: $gw, programmed: $programmed, listener_certificates_ready: $certs,
             http: {($app): $ha, ($pod): $hp}, https_local_ca: {($app): $sa, ($pod): $sp}, unknown_host: $un},
   objects: [.objects[] | {kind, namespace, name, ready, since}]}' "$OUT/flux-ready.json")"
[[ "$secret_ok" == true && "$issued" == true && "$certs_ok" == true && "$http_app $http_podinfo $https_app $https_podinfo $unrouted" == "200 200 200 200 404" ]] ||
  die "after Ready: SOPS Secret decrypted $secret_ok, cert-manager issued $issued, listener certificates $certs_ok; through the gateway: HTTP app $http_app, podinfo $http_podinfo, HTTPS app $https_app, podinfo $https_podinfo, unknown host $unrouted (want 404)"
# The local kube-prometheus-stack answers on its fixed address (the dashboards' queries run there
# after the loop).
wait_until 120 "Prometheus ready on $PROM_URL" node_run curl -fs --max-time 2 -o /dev/null "$PROM_URL/-/ready" ||
  die "the local Prometheus never answered $PROM_URL/-/ready"

# ---- the loop ------------------------------------------------------------------------------------

STEP=loop
current=$(python3 "$GITOPS" tags | awk -F'\t' '$1 == "flask-hello-world" { print $2 }')
good=$(next_patch "$current")
wait_until 120 "the app settled on $current" app_pods_on "$current"
say "loop: $current -> $good under load through the gateway ($GATEWAY_IP, Host $APP_HOST)"
loop_load_epoch=$(date +%s)
load_start loop "http://$GATEWAY_IP/" "$APP_HOST"
marker="released by the GitOps loop at $(date -u +%FT%TZ)"
sed -i "s|  <h1>Hello, World!</h1>|  <h1>Hello, World!</h1>\n  <p id=\"release-note\">$marker</p>|" \
  "$WORK/apps/flask-hello-world/src/flask_hello_world/templates/index.html"
grep -q "$marker" "$WORK/apps/flask-hello-world/src/flask_hello_world/templates/index.html" ||
  die "the app change did not apply (the template changed?)"
release "feat(app): a release note on the front page" "$good"
loop_build_s=$BUILD_S
loop_commit=$COMMIT_AT
wait_until "$LOOP_TIMEOUT" "image automation to commit $good" automation_committed "$good"
automation_s=$(since "$loop_commit")
wait_until "$LOOP_TIMEOUT" "all app pods Ready on $good" app_pods_on "$good"
ready_s=$(since "$loop_commit")
load_stop loop
served=$(node_run curl -s --max-time 5 -H "Host: $APP_HOST" "http://$GATEWAY_IP/" | grep -c "$marker" || true)
part loop "$(jq --arg from "$current" --arg to "$good" --argjson build "$loop_build_s" --argjson auto "$automation_s" \
  --argjson ready "$ready_s" --argjson served "$served" '
  {pass: (.failed == 0 and $served > 0), from: $from, to: $to, build_s: $build,
   commit_to_automation_commit_s: $auto, commit_to_ready_s: $ready, new_page_served: ($served > 0),
   through: "gateway", load: {url, host, sent, failed, achieved_rate, status, errors}}' "$OUT/load/loop.json")"
say "loop: commit -> all pods Ready on $good in $ready_s s (build $loop_build_s s, automation commit at $automation_s s)"

# The app's request lines (one JSON line per request, container "app") of the loop's load: the agent
# tailed them on the node and shipped them to Loki, which answers them by namespace.
STEP=logs
loki_query='{namespace="'$APP_NS'", container="app"} |= "\"path\""'
loki_lines() {
  node_run python3 "$GITOPS" loki --url "$LOKI_URL" --query "$loki_query" --since "$loop_load_epoch" \
    >"$OUT/loki.json" 2>>"$OUT/logs/loki-query.log"
}
# The agent sends a batch at least every second; give the last ones and Loki's ingester a moment.
logs_ok=true
wait_until 60 "the app's request lines in Loki" loki_lines || logs_ok=false
[[ -s "$OUT/loki.json" ]] || echo '{"lines": 0}' >"$OUT/loki.json"
part logs "$(jq --argjson ok "$logs_ok" --argjson sent "$(jq .sent "$OUT/load/loop.json")" --arg url "$LOKI_URL" '
  {pass: ($ok and .lines > 0), loki: $url, query, request_lines: .lines, lines_returned, streams, pods,
   loop_requests_sent: $sent, sample}' "$OUT/loki.json")"
say "logs: $(jq -c '{pass, request_lines, loop_requests_sent, streams}' "$OUT/parts/logs.json")"
[[ "$logs_ok" == true ]] || die "the app's request lines never became queryable in Loki ($OUT/loki.json)"

# Grafana's dashboards: every query of charts/outrigger/dashboards against the local
# kube-prometheus-stack's Prometheus, which scrapes what the tree's PodMonitor and ServiceMonitors
# select (the jobs below), and the golden metrics of every meshed pod (the cluster e2e's metrics
# test; no pod here is injected by the webhook, the apps carry the sidecar from their charts).
# kube-state-metrics runs, so its queries must return data too.
STEP=metrics
node_run python3 "$E2E" metrics --pki "$STATE/pki" --prom "$PROM_URL" --no-injection --kube-state-metrics \
  --jobs outrigger-agent,outrigger-proxy,kube-state-metrics,"$APP" \
  --dashboards "$OUTRIGGER_ROOT/charts/outrigger/dashboards" --metrics-md "$OUTRIGGER_ROOT/docs/metrics.md" \
  --wait 120 --out "$OUT/metrics.json"
# Alertmanager routes to the local receiver: the always-firing LocalWatchdog (the local values'
# rule) arrives as a webhook post.
am_seen() { python3 "$GITOPS" webhook "$OUT/alerts.jsonl" --after 0 --alertname LocalWatchdog >"$OUT/am-alerts.json"; }
am_ok=true
wait_until 120 "Alertmanager's webhook with LocalWatchdog at the receiver" am_seen || am_ok=false
[[ -s "$OUT/am-alerts.json" ]] || echo '[]' >"$OUT/am-alerts.json"
part metrics "$(jq --argjson am "$am_ok" --arg prom "$PROM_URL" --slurpfile amw "$OUT/am-alerts.json" '
  {pass: (.pass and $am), prometheus: $prom, checks_passed, checks_failed, dashboard_queries, dashboard_failures,
   alertmanager_webhook: {received: $am, alerts: ($amw[0][:1])}}' "$OUT/metrics.json")"
say "metrics: $(jq -c '{pass, checks_passed, dashboard_queries, alertmanager: .alertmanager_webhook.received}' "$OUT/parts/metrics.json")"

# ---- a bad release ---------------------------------------------------------------------------------

STEP="bad image"
bad=$(next_patch "$good")
say "bad image: $bad never gets Ready; the old pods must keep serving and Flux must alert"
load_start bad "http://$GATEWAY_IP/" "$APP_HOST"
app_py=$WORK/apps/flask-hello-world/src/flask_hello_world/app.py
sed -i 's|return jsonify(status="ready"), 200|return jsonify(status="ready"), 503|' "$app_py"
grep -q 'return jsonify(status="ready"), 503' "$app_py" || die "the bad change did not apply (app.py changed?)"
release "fix(app): a release that never gets Ready" "$bad"
bad_commit=$COMMIT_AT
bad_epoch=${bad_commit%.*}
wait_until "$LOOP_TIMEOUT" "image automation to commit $bad" automation_committed "$bad"
wait_until "$LOOP_TIMEOUT" "a pod on $bad" pod_on "$bad"
alert_seen() { python3 "$GITOPS" alerts "$OUT/alerts.jsonl" --after "$bad_epoch" --name "$APP" >"$OUT/bad-alerts.json"; }
wait_until "$LOOP_TIMEOUT" "Flux's alert about $APP" alert_seen
alert_s=$(since "$bad_commit")
# Held: when Flux alerts, every old pod is still Ready and no pod on the bad tag is.
held=false
held_on "$good" "$bad" && held=true
sleep 10 # more of the stall under load
load_stop bad
hr_ready=$(k -n "$APP_NS" get helmrelease "$APP" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
part bad_image "$(jq --arg tag "$bad" --argjson alert "$alert_s" --argjson held "$held" --arg hr "$hr_ready" \
  --slurpfile alerts "$OUT/bad-alerts.json" '
  {pass: (.failed == 0 and $held and ($alerts[0] | length) > 0), tag: $tag, held: $held,
   helmrelease_ready: $hr, commit_to_alert_s: $alert, alerts: $alerts[0][:3],
   through: "gateway", load: {url, host, sent, failed, achieved_rate, status, errors}}' "$OUT/load/bad.json")"

STEP=finished
part steps '{"pass": true}'
say "done"
