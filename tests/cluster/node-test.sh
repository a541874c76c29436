#!/usr/bin/env bash
# The local cluster (scripts/cluster.sh) end to end: `up`; the node's namespace has no default route
# (so no packet of the cluster can leave the machine); a pod whose image comes from the cluster's
# registry starts, gets a pod IP and answers HTTP on that IP and behind a ClusterIP Service, asked
# from inside the namespace; `down`; then the host looks exactly as before `up`: iptables/nft
# rules, mounts, network namespaces, links, routes, cgroups, kubelet's sysctls, node files, and no
# process left in the node's namespaces.
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/../../scripts/lib/env.sh"
cd "$OUTRIGGER_ROOT"

CLUSTER=scripts/cluster.sh
STATE=${OUTRIGGER_CLUSTER_DIR:-/tmp/outrigger-cluster}
WORK=$(mktemp -d /tmp/outrigger-cluster-test.XXXXXX)
say() { printf 'cluster-test: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
k() { "$CLUSTER" kubectl "$@"; }

# shellcheck source=scripts/lib/host-snapshot.sh
source "$OUTRIGGER_ROOT/scripts/lib/host-snapshot.sh"
snapshot() { host_snapshot "$1" "$STATE"; }
ns_processes() { ns_processes_of "$WORK/ns-ids"; }

finish() {
  local rc=$?
  trap - EXIT
  if [[ $rc -ne 0 && -d "$STATE/logs" ]]; then
    local log
    for log in "$STATE"/logs/*.log; do
      say "---- last lines of $log"
      tail -n 15 "$log" >&2
    done
  fi
  "$CLUSTER" down || rc=1
  snapshot "$WORK/after"
  if ! host_diff "$WORK/before" "$WORK/after" >&2; then
    say "FAIL: the host differs after down (diff above: - before up, + after down)"
    rc=1
  fi
  local left
  left=$(ns_processes)
  if [[ -n "$left" ]]; then
    say "FAIL: processes left in the node's namespaces: $left"
    rc=1
  fi
  [[ $rc -ne 0 ]] || say "host unchanged after down: iptables, nft, mounts, netns, links, routes, cgroups, sysctls, node files, processes"
  rm -rf "$WORK"
  if [[ $rc -eq 0 ]]; then say "PASS"; else say "FAILED"; fi
  exit "$rc"
}

# A run left over from an interrupted test would make the snapshot wrong: start from nothing.
"$CLUSTER" down
snapshot "$WORK/before"
trap finish EXIT

start_s=$SECONDS
"$CLUSTER" up >/dev/null
say "up in $(( SECONDS - start_s )) s"
cp "$STATE/ns-ids" "$WORK/ns-ids"

# The namespace routes only its own networks.
routes=$("$CLUSTER" exec ip -4 route show)
say "routes in the node's namespace: $(echo "$routes" | tr '\n' ';')"
[[ -z "$("$CLUSTER" exec ip -4 route show default)$("$CLUSTER" exec ip -6 route show default)" ]] \
  || fail "the node's namespace has a default route"
# A route lookup (no packet is sent) for an outside address must find nothing.
if "$CLUSTER" exec ip route get 192.0.2.1 >/dev/null 2>&1; then
  fail "the node's namespace has a route to 192.0.2.1"
fi
[[ "$(k get node outrigger-node -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')" == 10.240.0.10 ]] \
  || fail "node IP is not the namespace's 10.240.0.10"

image="$("$CLUSTER" registry)/busybox:test"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  # busybox httpd as PID 1 ignores SIGTERM: do not wait the default 30 s for it.
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $image
    imagePullPolicy: Always
    command: ["/bin/busybox", "sh", "-c", "mkdir -p /www && hostname >/www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
YAML
k wait --for=condition=Ready pod/web --timeout=90s >/dev/null || { k describe pod web >&2; fail "pod web not Ready"; }
pod_ip=$(k get pod web -o jsonpath='{.status.podIP}')
image_id=$(k get pod web -o jsonpath='{.status.containerStatuses[0].imageID}')
svc_ip=$(k get service web -o jsonpath='{.spec.clusterIP}')
say "pod web Ready: IP $pod_ip, image $image_id; Service web $svc_ip"
[[ "$pod_ip" == 10.241.0.* ]] || fail "pod IP $pod_ip is not in the pod CIDR 10.241.0.0/24"
[[ "$svc_ip" == 10.242.0.* ]] || fail "Service IP $svc_ip is not in the service CIDR 10.242.0.0/24"
[[ "$image_id" == "$("$CLUSTER" registry)/busybox@sha256:"* ]] || fail "image not pulled from the registry: $image_id"

body=$("$CLUSTER" exec curl -fsS --max-time 5 "http://$pod_ip:8080/")
[[ "$body" == web ]] || fail "pod IP answered '$body', want the pod's hostname 'web'"
say "GET http://$pod_ip:8080/ from the namespace: '$body'"
# kube-proxy writes the Service's rules shortly after the endpoint turns ready.
for i in $(seq 1 40); do
  body=$("$CLUSTER" exec curl -fsS --max-time 2 "http://$svc_ip/" 2>/dev/null) && break
  [[ $i -lt 40 ]] || fail "ClusterIP $svc_ip never answered (kube-proxy log: $STATE/logs/kube-proxy.log)"
  sleep 0.5
done
[[ "$body" == web ]] || fail "ClusterIP answered '$body', want 'web'"
svc_rules=$("$CLUSTER" exec iptables-save -t nat | grep -c -- '-A KUBE-SVC-' || true)
[[ $svc_rules -gt 0 ]] || fail "no KUBE-SVC- rules in the node's namespace (kube-proxy not in iptables mode?)"
say "kube-proxy's iptables rules in the node's namespace: $svc_rules KUBE-SVC- rules"
say "GET http://$svc_ip/ (ClusterIP) from the namespace: '$body'"
k delete pod web --wait=true --timeout=60s >/dev/null
