# shellcheck shell=bash
# Shared by scripts/cluster-e2e.sh, scripts/gateway-conformance.sh and scripts/gitops-e2e.sh:
# commands inside the local node's namespaces, background processes there, and the load generator
# through a Service. The caller
# sets OUT (its output folder, with logs/, pids/ and load/), LOADGEN and RATE (the load generator),
# E2E and PROM (Prometheus), and defines say; this file sets CLUSTER, STATE and IMAGES (the
# cluster script, its state folder and the image cache) and brings host-snapshot.sh.

# shellcheck source=scripts/lib/host-snapshot.sh
source "$OUTRIGGER_ROOT/scripts/lib/host-snapshot.sh"
CLUSTER=$OUTRIGGER_ROOT/scripts/cluster.sh
STATE=${OUTRIGGER_CLUSTER_DIR:-/tmp/outrigger-cluster}
# shellcheck disable=SC2034 # read by the scripts that source this
IMAGES=${OUTRIGGER_IMAGES_DIR:-/tmp/outrigger-images}

# node_run CMD...: CMD inside the node's network and mount namespaces (like `cluster.sh exec`).
# Entering a mount namespace moves the working directory to its root: every path given to a
# command run this way must be absolute.
node_run() { nsenter --target "$(cat "$STATE/holder.pid")" --mount --net -- "$@"; }
k() { node_run kubectl --kubeconfig "$STATE/pki/admin.kubeconfig" "$@"; }
helm_() { node_run helm --kubeconfig "$STATE/pki/admin.kubeconfig" "$@"; }

# bg NAME CMD...: a background process inside the node's namespaces, stopped by finish (and,
# being in those namespaces, by `cluster.sh down` in any case).
bg() {
  local name=$1
  shift
  # nsenter itself, not node_run: a backgrounded function would run in a subshell whose PID is
  # not the command's; nsenter execs the command, so $! is the command's own PID.
  nsenter --target "$(cat "$STATE/holder.pid")" --mount --net -- "$@" >"$OUT/logs/$name.log" 2>&1 &
  echo $! >"$OUT/pids/$name"
}
stop_bg() {
  local f pid
  for f in "$OUT"/pids/*; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

# load_start NAME URL [HOST]: the load generator inside the node's namespace (through a Service, or
# a gateway, which routes by the Host header HOST).
load_start() {
  rm -f "$OUT/load/$1.stop" "$OUT/load/$1.ready"
  bg "load-$1" python3 "$LOADGEN" --url "$2" ${3:+--host "$3"} --rate "$RATE" --duration 900 \
    --stop-file "$OUT/load/$1.stop" --ready-file "$OUT/load/$1.ready" --out "$OUT/load/$1.json"
  local _
  for _ in $(seq 1 50); do [[ -f "$OUT/load/$1.ready" ]] && break; sleep 0.2; done
  sleep 3 # steady state before the action
}
load_stop() {
  local pid
  sleep 2 # the tail of the action (last endpoints updates) still under load
  touch "$OUT/load/$1.stop"
  pid=$(cat "$OUT/pids/load-$1")
  wait "$pid" || true
  rm -f "$OUT/pids/load-$1"
  [[ -s "$OUT/load/$1.json" ]] || { say "load generator $1 wrote no result"; return 1; }
  say "load $1: $(jq -c '{sent, failed, achieved_rate, status, errors}' "$OUT/load/$1.json")"
}

# prometheus_start: Debian's Prometheus on $PROM inside the node's namespace, scraping every 5 s the
# file_sd targets `tests/cluster/e2e.py targets` writes from the API's pod list every 2 s (Debian
# builds it without kubernetes_sd), with charts/outrigger's PodMonitor/ServiceMonitor labels.
# Needs E2E and PROM; writes under $OUT/prom.
prometheus_start() {
  mkdir -p "$OUT/prom"
  cat >"$OUT/prom/prometheus.yml" <<EOF
global: {scrape_interval: 5s, scrape_timeout: 4s, evaluation_interval: 5s}
scrape_configs:
  # Every target and its labels (job, namespace, pod, container, node, workload) come from
  # tests/cluster/e2e.py targets, which mirrors charts/outrigger's PodMonitor and ServiceMonitor.
  - job_name: kubernetes-pods
    file_sd_configs: [{files: ["$OUT/prom/targets.json"], refresh_interval: 5s}]
EOF
  node_run python3 "$E2E" targets --pki "$STATE/pki" --out "$OUT/prom/targets.json" --once
  bg targets python3 "$E2E" targets --pki "$STATE/pki" --out "$OUT/prom/targets.json"
  bg prometheus prometheus --config.file="$OUT/prom/prometheus.yml" --storage.tsdb.path="$OUT/prom/data" \
    --web.listen-address="$PROM" --log.level=warn
  local _
  for _ in $(seq 1 60); do
    node_run curl -fsS --max-time 2 "http://$PROM/-/ready" >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "prometheus never got ready ($OUT/logs/prometheus.log)"
  return 1
}

# host_clean_after_down: `cluster.sh down` (CLUSTER), then the host compared with its snapshot from
# before `up` ($OUT/host-before, scripts/lib/host-snapshot.sh) and no process left in the node's
# namespaces; prints the host-clean result as JSON. Run stop_bg first, in the calling shell.
host_clean_after_down() {
  local left
  "$CLUSTER" down >>"$OUT/logs/cluster.log" 2>&1
  host_snapshot "$OUT/host-after" "$STATE"
  left=$(ns_processes_of "$OUT/ns-ids")
  if host_diff "$OUT/host-before" "$OUT/host-after" >"$OUT/host-diff" && [[ -z "$left" ]]; then
    jq -n '{name: "host-clean", pass: true,
      detail: "iptables, nft, mounts, netns, links, routes, cgroups, sysctls, node files, processes: as before up"}'
  else
    jq -n --arg d "$(head -c 2000 "$OUT/host-diff")" --arg l "$left" \
      '{name: "host-clean", pass: false, detail: ("host differs after down: " + $d + " processes left: " + $l)}'
  fi
}

svc_ip() { k -n "$1" get service "$2" -o jsonpath='{.spec.clusterIP}'; }

# settled NAMESPACE RELEASE REPLICAS [TAG]: exactly REPLICAS pods of the release, none terminating,
# all Ready, and with TAG every one running an image tagged TAG.
settled() {
  k -n "$1" get pods -l "app.kubernetes.io/instance=$2" -o json | jq -e --argjson n "$3" --arg tag "${4:+:$4}" '
    [.items[] | select(.metadata.deletionTimestamp == null)] as $live
    | ($live | length) == $n and (.items | length) == $n
    and all($live[]; any(.status.conditions[]?; .type == "Ready" and .status == "True"))
    and ($tag == "" or all($live[]; any(.spec.containers[]; .image | endswith($tag))))' >/dev/null
}

# diagnostics: the cluster's pods and recent events, for a failed run.
diagnostics() {
  {
    echo "## pods"; k get pods -A -o wide
    echo "## events"; k get events -A --sort-by=.lastTimestamp | tail -n 80
  } >"$OUT/logs/diagnostics.log" 2>&1 || true
}
