#!/usr/bin/env bash
# make cluster-e2e (issue 17, item 5): the platform on the local single-node cluster, installed the
# way a user installs it, and the end-to-end tests on it.
#
#   images    scripts/images.sh build (proxy, agent, injector, flask-hello-world, podinfo, pause from
#             this tree; before `up`, so an idle cluster does not compete for the CPU)
#   up        scripts/cluster.sh up (the node in a network namespace without a default route), then
#             each image pushed to the node's registry with scripts/cluster.sh push
#   install   helm install charts/outrigger (agent DaemonSet shipping to a Loki-compatible sink,
#             injector webhook with TLS from a Secret made here with openssl); charts/flask-hello-world
#             twice: `hello` with the sidecar and `plain` without (the baseline: readiness probe
#             only); podinfo from its own chart with the sidecar injected by the webhook;
#             Debian's prometheus scraping proxy, agent, injector and app pods (file_sd targets
#             from the API: Debian builds prometheus without kubernetes_sd)
#   tests     rollout-restart, image-change, kill-app, scale-down (load through the Service at
#             >= 200 req/s, half keep-alive, half new connections; sidecar and baseline in the
#             same run; rollout-restart, image-change and scale-down also through the gateway:
#             the chart's gateway, a Gateway `edge` and an HTTPRoute to the baseline's pods, its
#             address read from the Gateway's status), service-through-sidecar, logs, metrics,
#             host-clean
#   down      always (trap), then the host is compared with its state before the run
#
# Writes target/cluster-e2e/summary.json (per test: pass/fail, counts per status and error
# kind, the baseline's figures beside the sidecar's) and prints one line per test; exits non-zero
# on any failure. Needs root, the toolchain (scripts/tools.sh: cluster step, helm) and Debian's
# podman, mmdebstrap, prometheus. Under CI=true a missing tool fails, elsewhere it is skipped.
# docs/cluster.md, "End-to-end tests", explains each test and how to debug a failing run.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=scripts/lib/node-e2e.sh
source "$OUTRIGGER_ROOT/scripts/lib/node-e2e.sh"
cd "$OUTRIGGER_ROOT"

OUT=$OUTRIGGER_ROOT/target/cluster-e2e
E2E=$OUTRIGGER_ROOT/tests/cluster/e2e.py
LOADGEN=$OUTRIGGER_ROOT/tests/cluster/loadgen.py
RATE=${OUTRIGGER_E2E_RATE:-200}
# How long a rollout may take to settle (all old pods gone, the new ones Ready).
SETTLE_TIMEOUT=${OUTRIGGER_E2E_SETTLE_TIMEOUT:-240}
APPS=apps
SYSTEM=outrigger-system
SINK_PORT=3100
PROM=127.0.0.1:9090
LOG_LINES=600
TESTS=rollout-restart,image-change,kill-app,scale-down,service-through-sidecar,logs,metrics,host-clean
REGISTRY=localhost:5000

say() { printf 'cluster-e2e: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need() {
  local t
  [[ $(id -u) -eq 0 ]] || { skip_or_fail "make cluster-e2e" "needs root (the cluster and the image builds)"; exit 0; }
  for t in helm kubectl openssl python3 prometheus jq podman mmdebstrap nsenter ctr curl base64; do
    command -v "$t" >/dev/null || { skip_or_fail "make cluster-e2e" "$t not installed (scripts/tools.sh)"; exit 0; }
  done
}

# result NAME JSON: one test's result (the summary reads every file).
result() { printf '%s\n' "$2" >"$OUT/tests/$1.json"; }
# run_test NAME FN ARGS...: FN in a subshell; if it fails before writing its result, the test is
# recorded as failed with the step that failed, and the run goes on with the next test.
run_test() {
  local name=$1 start=$SECONDS rc=0
  shift
  say "test $name"
  # In the background and waited for: a subshell in an `if`/`||` would run with errexit off.
  ( "$@" ) >>"$OUT/logs/tests.log" 2>&1 &
  wait $! || rc=$?
  if [[ $rc -ne 0 ]]; then
    say "test $name: a step failed (tail of $OUT/logs/tests.log below)"
    tail -n 20 "$OUT/logs/tests.log" >&2
    [[ -f "$OUT/tests/$name.json" ]] ||
      result "$name" "$(jq -n --arg n "$name" --arg d "a step failed: $(tail -n 3 "$OUT/logs/tests.log" | tr '\n' ' ')" '{name: $n, pass: false, detail: $d}')"
  fi
  say "test $name: $(( SECONDS - start )) s"
}


finish() {
  local rc=$?
  trap - EXIT
  set +e
  [[ $rc -eq 0 ]] || say "a step failed (exit $rc); diagnostics in $OUT/logs/"
  if [[ -f "$STATE/holder.pid" ]]; then diagnostics; fi
  stop_bg
  result host-clean "$(host_clean_after_down)"
  python3 "$E2E" summary --dir "$OUT/tests" --order "$TESTS" --seconds "$SECONDS" --out "$OUT/summary.json" || rc=1
  say "summary: $OUT/summary.json ($SECONDS s)"
  exit "$rc"
}

# ---- setup --------------------------------------------------------------------------------------

need
rm -rf "$OUT"
mkdir -p "$OUT"/{tests,logs,pids,load,pki,prom,charts}
# A run left over from an interrupted test would make the snapshot wrong: start from nothing.
"$CLUSTER" down >"$OUT/logs/cluster.log" 2>&1
host_snapshot "$OUT/host-before" "$STATE"
trap finish EXIT

# Images first: the build needs no cluster, and an idle cluster would only compete for the CPU.
say "images: scripts/images.sh build (log $OUT/logs/images.log)"
start_s=$SECONDS
scripts/images.sh build >"$OUT/logs/images.log" 2>&1 || { tail -n 30 "$OUT/logs/images.log" >&2; die "image build failed"; }
say "images built in $(( SECONDS - start_s )) s"

say "cluster up"
start_s=$SECONDS
"$CLUSTER" up >>"$OUT/logs/cluster.log" 2>&1 || { tail -n 30 "$OUT/logs/cluster.log" >&2; die "cluster up failed"; }
cp "$STATE/ns-ids" "$OUT/ns-ids"
say "cluster up in $(( SECONDS - start_s )) s"
tag() { jq -r --arg n "$1" '.images[] | select(.name == $n) | .tag' "$IMAGES/images.json"; }
while IFS=$'\t' read -r name tag archive; do
  "$CLUSTER" push "$archive" "$name:$tag" >>"$OUT/logs/cluster.log" 2>&1
done < <(jq -r '.images[] | select(.short != "flux") | [.name, .tag, .archive] | @tsv' "$IMAGES/images.json")
T_PROXY=$(tag outrigger-proxy)
T_AGENT=$(tag outrigger-agent)
T_INJECTOR=$(tag outrigger-injector)
T_APP=$(tag flask-hello-world)
T_PODINFO=$(tag podinfo)
# The image-change test needs a second reference: the same archive under another tag.
T_APP_B="$T_APP-b"
"$CLUSTER" push "$(jq -r '.images[] | select(.name == "flask-hello-world") | .archive' "$IMAGES/images.json")" \
  "flask-hello-world:$T_APP_B" >>"$OUT/logs/cluster.log" 2>&1

# The Loki-compatible sink on the node's loopback: the agent runs with hostNetwork, i.e. in the
# node's network namespace, so it reaches 127.0.0.1:3100 there and nothing else can.
bg sink python3 "$OUTRIGGER_ROOT/scripts/lib/demo-sink.py" "$SINK_PORT" "$OUT/sink.jsonl"

say "install: charts/outrigger (agent, injector with TLS from a Secret)"
pki=$OUT/pki
injector_host=outrigger-injector.$SYSTEM.svc
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=outrigger-e2e-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$injector_host" -keyout "$pki/tls.key" -out "$pki/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local\nextendedKeyUsage=serverAuth\n' "$injector_host" "$injector_host" >"$pki/ext"
openssl x509 -req -in "$pki/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
  -extfile "$pki/ext" -out "$pki/tls.crt" 2>/dev/null
k create namespace "$SYSTEM" >/dev/null
k create namespace "$APPS" >/dev/null
k -n "$SYSTEM" create secret tls outrigger-injector-tls --cert "$pki/tls.crt" --key "$pki/tls.key" >/dev/null
helm_ install outrigger "$OUTRIGGER_ROOT/charts/outrigger" -n "$SYSTEM" --wait --timeout 5m \
  --set fullnameOverride=outrigger \
  --set agent.image.repository=$REGISTRY/outrigger-agent --set "agent.image.tag=$T_AGENT" \
  --set agent.loki.url=http://127.0.0.1:$SINK_PORT/loki/api/v1/push --set agent.loki.encoding=json \
  --set injector.replicas=1 \
  --set injector.image.repository=$REGISTRY/outrigger-injector --set "injector.image.tag=$T_INJECTOR" \
  --set injector.proxy.image.repository=$REGISTRY/outrigger-proxy --set "injector.proxy.image.tag=$T_PROXY" \
  --set injector.certificate.source=secret --set injector.certificate.existingSecret=outrigger-injector-tls \
  --set "injector.certificate.caBundle=$(base64 -w0 "$pki/ca.crt")" \
  --set-json 'injector.nodeSelector={"doks.digitalocean.com/node-pool":null}' --set-json injector.tolerations='[]' \
  --set serviceMonitor.enabled=false --set podMonitor.enabled=false \
  --set dashboards.enabled=false --set prometheusRules.enabled=false \
  --set gateway.enabled=true \
  --set gateway.image.repository=$REGISTRY/outrigger-proxy --set "gateway.image.tag=$T_PROXY" \
  --set gateway.service.type=ClusterIP --set-json 'gateway.service.annotations={}' \
  --set-json 'gateway.nodeSelector={"doks.digitalocean.com/node-pool":null}' --set-json gateway.tolerations='[]' \
  >>"$OUT/logs/helm.log" 2>&1 || die "helm install outrigger failed ($OUT/logs/helm.log)"

say "install: flask-hello-world with the sidecar (hello) and without (plain), podinfo (injected)"
cp -R charts/outrigger-sidecar charts/flask-hello-world "$OUT/charts/"
rm -rf "$OUT/charts/flask-hello-world/charts"
helm_ dependency build --skip-refresh "$OUT/charts/flask-hello-world" >>"$OUT/logs/helm.log" 2>&1
app_chart=$OUT/charts/flask-hello-world
app_common=(--set replicaCount=3 --set "image.repository=$REGISTRY/flask-hello-world" --set "image.tag=$T_APP")
helm_ install hello "$app_chart" -n "$APPS" --wait --timeout 5m "${app_common[@]}" --set fullnameOverride=hello \
  --set outrigger.image.repository=$REGISTRY/outrigger-proxy --set "outrigger.image.tag=$T_PROXY" \
  --set "outrigger.drainTokenSeed=$(openssl rand -hex 16)" \
  >>"$OUT/logs/helm.log" 2>&1 || die "helm install hello failed ($OUT/logs/helm.log)"
# The seed's plain setup: no sidecar, no drain delay in the app, the readiness probe only.
helm_ install plain "$app_chart" -n "$APPS" --wait --timeout 5m "${app_common[@]}" --set fullnameOverride=plain \
  --set outrigger.enabled=false --set app.drainDelaySeconds=0 \
  >>"$OUT/logs/helm.log" 2>&1 || die "helm install plain failed ($OUT/logs/helm.log)"
helm_ install podinfo "$IMAGES/charts/podinfo" -n "$APPS" --wait --timeout 5m --set replicaCount=2 \
  --set image.repository=$REGISTRY/podinfo --set "image.tag=$T_PODINFO" \
  --set-string 'podAnnotations.outrigger\.io/inject=enabled' \
  >>"$OUT/logs/helm.log" 2>&1 || die "helm install podinfo failed ($OUT/logs/helm.log)"

# The edge: a Gateway of the chart's class and an HTTPRoute to the baseline's (plain) Service, so
# the rollout tests also run client -> gateway -> app pods. Its address is the one the gateway
# writes into the Gateway's status (today the chart's Service; per-Gateway Services later).
say "install: Gateway edge + HTTPRoute to $APPS/plain (class outrigger)"
k apply -f - >/dev/null <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: $APPS}
spec:
  gatewayClassName: outrigger
  listeners:
  - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: Same}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain, namespace: $APPS}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs: [{name: plain, port: 80}]
YAML
gateway_url() {
  local addr
  addr=$(k -n "$APPS" get gateway edge -o json | jq -r '
    select(any(.status.conditions[]?; .type == "Programmed" and .status == "True"))
    | .status.addresses[0].value // empty')
  [[ -n "$addr" ]] && printf 'http://%s:80/' "$addr"
}
GATEWAY_URL=""
for ((i = 0; i < 120; i += 2)); do
  GATEWAY_URL=$(gateway_url || true)
  if [[ -n "$GATEWAY_URL" ]] && [[ "$(node_run curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$GATEWAY_URL" || true)" == 200 ]]; then
    break
  fi
  sleep 2
done
[[ $i -lt 120 ]] || die "the Gateway edge did not serve $APPS/plain within 120 s (address '${GATEWAY_URL}')"
say "gateway: $GATEWAY_URL -> $APPS/plain"

say "prometheus: file_sd targets from the API, scraping every 5 s"
prometheus_start || die "prometheus did not start"

# ---- tests --------------------------------------------------------------------------------------

# wait_settled RELEASE REPLICAS: until the release of $APPS is settled (scripts/lib/node-e2e.sh).
wait_settled() {
  local i
  for ((i = 0; i < SETTLE_TIMEOUT; i += 2)); do
    settled "$APPS" "$1" "$2" && return 0
    sleep 2
  done
  say "release $1 did not settle at $2 Ready pods in ${SETTLE_TIMEOUT} s"
  return 1
}

# rollout CASE RELEASE REPLICAS ACTION...: load through RELEASE's Service during ACTION, until the
# release settled again. With LEG=gateway the load goes through the Gateway instead (GATEWAY_URL,
# routed to RELEASE's pods) and is recorded as CASE-gateway.
rollout() {
  local case=$1 rel=$2 n=$3 url name
  shift 3
  url="http://$(svc_ip "$APPS" "$rel")/" name="$case-$rel"
  if [[ ${LEG:-} == gateway ]]; then url=$GATEWAY_URL name="$case-gateway"; fi
  wait_settled "$rel" 3
  load_start "$name" "$url"
  "$@"
  k -n "$APPS" rollout status "deployment/$rel" --timeout="${SETTLE_TIMEOUT}s" >/dev/null
  wait_settled "$rel" "$n"
  load_stop "$name"
}

act_restart() { k -n "$APPS" rollout restart "deployment/$1" >/dev/null; }
# act_image RELEASE: the app image to the other of its two tags (a second run on the same release,
# the gateway leg, changes it back).
act_image() {
  local to=$T_APP_B
  [[ "$(k -n "$APPS" get deployment "$1" -o jsonpath='{.spec.template.spec.containers[?(@.name=="app")].image}')" == *":$T_APP_B" ]] &&
    to=$T_APP
  helm_ upgrade "$1" "$app_chart" -n "$APPS" --reuse-values --set "image.tag=$to" >/dev/null
}
act_scale() { k -n "$APPS" scale "deployment/$1" --replicas=1 >/dev/null; }

test_rollout() {
  local name=$1 act=$2 n=$3 rel
  for rel in hello plain; do
    rollout "$name" "$rel" "$n" "$act" "$rel"
  done
  # The same action on the baseline's pods again, the load through the gateway this time (the
  # replicas back to 3 first when the action scaled them down).
  k -n "$APPS" scale deployment/plain --replicas=3 >/dev/null
  LEG=gateway rollout "$name" plain "$n" "$act" plain
  python3 "$E2E" rollout --name "$name" --rate "$RATE" --zero-failures \
    --sidecar "$OUT/load/$name-hello.json" --baseline "$OUT/load/$name-plain.json" \
    --gateway "$OUT/load/$name-gateway.json" --out "$OUT/tests/$name.json"
}

# kill_app RELEASE: SIGKILL one replica's app container through containerd, under load, until the
# container restarted and the pod is Ready again.
kill_app() {
  local rel=$1 pod cid before i
  wait_settled "$rel" 3
  pod=$(k -n "$APPS" get pods -l "app.kubernetes.io/instance=$rel" -o jsonpath='{.items[0].metadata.name}')
  cid=$(k -n "$APPS" get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="app")].containerID}')
  before=$(k -n "$APPS" get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="app")].restartCount}')
  load_start "kill-$rel" "http://$(svc_ip "$APPS" "$rel")/"
  node_run ctr --address /run/containerd/containerd.sock -n k8s.io tasks kill -s SIGKILL "${cid#containerd://}"
  for ((i = 0; i < SETTLE_TIMEOUT; i += 2)); do
    [[ "$(k -n "$APPS" get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="app")].restartCount}')" -gt "$before" ]] &&
      settled "$APPS" "$rel" 3 && break
    sleep 2
  done
  load_stop "kill-$rel"
  jq -n --arg p "$pod" --arg c "${cid#containerd://}" '{pod: $p, container: $c}' >"$OUT/load/kill-$rel.target"
  [[ $i -lt $SETTLE_TIMEOUT ]] || { say "$pod: the app container did not come back"; return 1; }
}
test_kill() {
  kill_app hello
  kill_app plain
  python3 "$E2E" rollout --name kill-app --rate "$RATE" \
    --sidecar "$OUT/load/kill-hello.json" --baseline "$OUT/load/kill-plain.json" \
    --extra "$(jq -n --slurpfile s "$OUT/load/kill-hello.target" --slurpfile b "$OUT/load/kill-plain.target" \
      '{killed: {sidecar: $s[0], baseline: $b[0]}, how: "ctr tasks kill -s SIGKILL (containerd), app container of one of 3 replicas"}')" \
    --out "$OUT/tests/kill-app.json"
}

# service-through-sidecar: requests through podinfo's and the app's Services show up in the
# sidecars' outrigger_proxy_requests_total (read from every meshed pod's admin port).
test_service() {
  local rel sel before after sent delta injected workers problems=() details="{}"
  injected=$(k -n "$APPS" get pods -l app.kubernetes.io/name=podinfo -o json |
    jq '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.spec.initContainers[]?; .name == "outrigger-proxy"))] | length')
  [[ "$injected" -ge 1 ]] || problems+=("no podinfo pod has the injected outrigger-proxy")
  # Injected (podinfo) and chart-rendered (hello) sidecars both run the one-worker runtime that
  # bench/proxy.sh measures, whatever the node's core count.
  workers=$(k -n "$APPS" get pods -o json | jq -c '[.items[] | select(.metadata.deletionTimestamp == null)
    | .spec.initContainers[]? | select(.name == "outrigger-proxy")
    | ([(.env // [])[] | select(.name == "OUTRIGGER_WORKERS") | .value] | first // "unset")] | unique')
  [[ "$workers" == '["1"]' ]] || problems+=("the sidecars' OUTRIGGER_WORKERS values are $workers, not 1")
  for rel in hello podinfo; do
    # podinfo's chart selects its pods by name only.
    sel=app.kubernetes.io/instance=$rel
    [[ $rel == podinfo ]] && sel=app.kubernetes.io/name=podinfo
    before=$(node_run python3 "$E2E" proxy-requests --pki "$STATE/pki" --namespace "$APPS" --selector "$sel" | jq 'add // 0')
    local port=80
    [[ $rel == podinfo ]] && port=$(k -n "$APPS" get service podinfo -o jsonpath='{.spec.ports[0].port}')
    node_run python3 "$LOADGEN" --url "http://$(svc_ip "$APPS" "$rel"):$port/" --rate 40 --workers 4 --duration 5 \
      --out "$OUT/load/service-$rel.json" >/dev/null
    after=$(node_run python3 "$E2E" proxy-requests --pki "$STATE/pki" --namespace "$APPS" --selector "$sel" | jq 'add // 0')
    sent=$(jq .succeeded "$OUT/load/service-$rel.json")
    delta=$(jq -n "$after - $before")
    details=$(jq --arg r "$rel" --argjson s "$sent" --argjson d "$delta" '. + {($r): {through_service_ok: $s, sidecar_requests_delta: $d}}' <<<"$details")
    [[ "$sent" -gt 0 ]] || problems+=("$rel: no request through the Service succeeded")
    jq -e -n "$delta >= $sent" >/dev/null || problems+=("$rel: $sent requests through the Service, the sidecars counted $delta")
  done
  result service-through-sidecar "$(jq -n --argjson d "$details" --argjson i "$injected" \
    --argjson w "$workers" --arg p "$(printf '%s; ' "${problems[@]}")" \
    '{name: "service-through-sidecar", pass: ($p == "; " or $p == ""), podinfo_pods_injected: $i, sidecar_workers: $w, services: $d,
      detail: (if ($p == "; " or $p == "") then ($d | tostring) else $p end)}')"
}

# logs: a logger pod writes numbered lines; midway the agent's pod is deleted and the DaemonSet
# restarts it; every line must reach the sink once, with the labels; and every stdout line of the
# app pods still running (their CRI files) too.
test_logs() {
  local old new t0 restart i
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: logger, namespace: $APPS, labels: {app.kubernetes.io/name: e2e-logger}}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  automountServiceAccountToken: false
  containers:
  - name: logger
    image: $REGISTRY/busybox:test
    command: ["/bin/busybox", "sh", "-c", "i=0; while [ \$i -lt $LOG_LINES ]; do echo \"e2e-log \$i\"; i=\$((i+1)); /bin/busybox usleep 50000; done; exec /bin/busybox sleep 3600"]
YAML
  k -n "$APPS" wait --for=condition=Ready pod/logger --timeout=90s >/dev/null
  sleep 10
  old=$(k -n "$SYSTEM" get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[0].metadata.name}')
  t0=$SECONDS
  k -n "$SYSTEM" delete pod "$old" --wait=false >/dev/null
  # The DaemonSet's replacement: another name, Ready (rollout status could answer before the
  # controller even noticed the deletion).
  new=null
  for i in $(seq 1 60); do
    new=$(k -n "$SYSTEM" get pods -l app.kubernetes.io/component=agent -o json | jq -r --arg old "$old" '
      [.items[] | select(.metadata.name != $old and .metadata.deletionTimestamp == null)
       | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))][0].metadata.name')
    [[ "$new" != null ]] && break
    [[ $i -lt 60 ]] || { say "the DaemonSet did not replace agent pod $old within 120 s"; return 1; }
    sleep 2
  done
  restart=$(jq -n --arg o "$old" --arg n "$new" --argjson s $(( SECONDS - t0 )) '{deleted: $o, replacement: $n, ready_after_s: $s}')
  say "agent pod $old deleted, $new Ready"
  # The logger finishes its lines (30 s in all), then the check waits for the sink up to 90 s.
  sleep 25
  node_run python3 "$E2E" logs --pki "$STATE/pki" --sink "$OUT/sink.jsonl" --namespace "$APPS" \
    --logger-pod logger --count "$LOG_LINES" --log-root "$STATE/root/var/log/pods" --wait 90 \
    --agent-restart "$restart" --out "$OUT/tests/logs.json"
}

test_metrics() {
  node_run python3 "$E2E" metrics --pki "$STATE/pki" --prom "http://$PROM" \
    --dashboards "$OUTRIGGER_ROOT/charts/outrigger/dashboards" --metrics-md "$OUTRIGGER_ROOT/docs/metrics.md" --wait 60 --out "$OUT/tests/metrics.json"
}

run_test rollout-restart test_rollout rollout-restart act_restart 3
run_test image-change test_rollout image-change act_image 3
run_test kill-app test_kill
run_test scale-down test_rollout scale-down act_scale 1
run_test service-through-sidecar test_service
run_test logs test_logs
run_test metrics test_metrics
