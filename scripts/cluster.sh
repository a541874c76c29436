#!/usr/bin/env bash
# A local single-node Kubernetes cluster (issue 17), offline, on this machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy (iptables mode) and an
# image registry, all from scripts/tools.sh (step cluster) at the pinned Kubernetes version.
#
# Everything runs inside a network namespace this script creates, which has NO default route (node
# IP on a veth interface, the pod bridge, pod and service CIDRs, kube-proxy's and CNI's rules, the
# registry all live there), and inside one private mount namespace in which the node's files
# (/run, /var/lib, /var/log, kubelet's kernel sysctls under /proc/sys, and a sysfs of its own
# network namespace) are mounts of folders in the state directory: the host's values and mounts
# never change. Both namespaces are held by one process (the holder), not named in /run/netns;
# `exec` and `kubectl` enter them.
# docs/cluster.md explains the layout, the obstacles of this VM and how to debug a failing run.
#
# usage: scripts/cluster.sh up                 start (or find running) the cluster; prints the kubeconfig
#        scripts/cluster.sh down               stop everything and remove what up created (idempotent)
#        scripts/cluster.sh status             exit 0 if the node is Ready
#        scripts/cluster.sh kubeconfig         print the path of the admin kubeconfig
#        scripts/cluster.sh kubectl ARGS...    kubectl against the cluster (runs inside the namespace)
#        scripts/cluster.sh exec CMD...        run CMD inside the node's network and mount namespaces
#        scripts/cluster.sh push ARCHIVE REF   push an OCI archive to the registry as REF (NAME:TAG);
#                                              pods pull it as $REGISTRY/REF (see `registry`)
#        scripts/cluster.sh registry           print the registry host pods pull from (localhost:5000)
# State dir: ${OUTRIGGER_CLUSTER_DIR:-/tmp/outrigger-cluster}; its logs/ stays after `down`.
# `up` refuses to start with less than 2% + ${OUTRIGGER_CLUSTER_MIN_FREE_GB:-4} GiB free there (kubelet evicts below 2%).
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

STATE=${OUTRIGGER_CLUSTER_DIR:-/tmp/outrigger-cluster}
READY_TIMEOUT=${OUTRIGGER_CLUSTER_READY_TIMEOUT:-150}
NODE_NAME=outrigger-node
# The cluster's addresses exist only inside its network namespace: the node on a veth interface, pods on the
# bridge, services routed to node0 (kube-proxy's DNAT turns them into pod addresses).
NODE_IP=10.240.0.10
NODE_CIDR=10.240.0.0/24
POD_CIDR=10.241.0.0/24
POD_GATEWAY=10.241.0.1
SERVICE_CIDR=10.242.0.0/24
API_SERVICE_IP=10.242.0.1
BRIDGE=cni0
REGISTRY=localhost:5000
# kubelet's desired kernel tunables (pkg/kubelet/cm setupKernelTunables): files with these values
# are bind-mounted over the /proc/sys entries, so kubelet finds them right and writes nothing.
NODE_SYSCTLS=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)
# Cgroups: the node's daemons in $CG_NODE, kubelet's pods under $CG_ROOT (cgroupRoot), in every
# hierarchy, so `down` can find every process and remove every cgroup.
CG_NODE=outrigger-node
CG_ROOT=outrigger-pods
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd registry kubelet kube-proxy)

say() { printf 'cluster: %s\n' "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

holder_pid() { [[ -f "$STATE/holder.pid" ]] && cat "$STATE/holder.pid"; }
alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

# in_node CMD...: CMD in the node's network and mount namespaces (the holder process keeps both).
in_node() {
  local pid
  pid=$(holder_pid || true)
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then fail "the cluster is not running (scripts/cluster.sh up)"; fi
  nsenter --target "$pid" --mount --net -- "$@"
}

kubectl_node() { in_node kubectl --kubeconfig "$STATE/pki/admin.kubeconfig" "$@"; }

need_tools() {
  local t missing=()
  for t in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl \
    registry containerd containerd-shim-runc-v2 runc buildah skopeo busybox gcc nsenter unshare ip iptables; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [[ ${#missing[@]} -eq 0 ]] || fail "missing tools: ${missing[*]} (scripts/tools.sh apt cluster)"
  [[ $(id -u) -eq 0 ]] || fail "needs root (network, mount namespaces and cgroups)"
}

# The node's images, containers, pod logs and etcd live in $STATE, and kubelet evicts every pod
# once its filesystem has less than EVICT_FREE_PCT free (kubelet's evictionHard): a nearly full
# disk would show up minutes later as Pending pods ("untolerated taint"
# node.kubernetes.io/disk-pressure), so refuse to start and say so. The margin is what one e2e run
# writes (images, logs, etcd) on top of that.
EVICT_FREE_PCT=2
MIN_FREE_MARGIN_GB=${OUTRIGGER_CLUSTER_MIN_FREE_GB:-4}
check_disk() {
  local size avail evict need gib=$(( 1024 * 1024 * 1024 ))
  read -r size avail < <(df -B1 --output=size,avail "$STATE" | tail -n 1)
  evict=$(( size * EVICT_FREE_PCT / 100 ))
  need=$(( evict + MIN_FREE_MARGIN_GB * gib ))
  if (( avail < need )); then
    fail "only $(( avail / gib )) GiB free on the filesystem of $STATE; the node evicts its pods below ${EVICT_FREE_PCT}% free ($(( evict / gib )) GiB) and a run needs ${MIN_FREE_MARGIN_GB} GiB more, so $(( need / gib )) GiB: free space (old target/ dirs, ~/.cache/go-build) or set OUTRIGGER_CLUSTER_DIR to a bigger filesystem (OUTRIGGER_CLUSTER_MIN_FREE_GB sets the margin)"
  fi
}

# cgroup_dirs NAME: NAME's directory in every cgroup hierarchy of the host (v1 controllers and the
# v2 `unified` one of the hybrid layout).
cgroup_dirs() {
  awk -v n="$1" '$3 == "cgroup" || $3 == "cgroup2" { print $2 "/" n }' /proc/self/mounts
}

cgroups_create() {
  local d parent
  while read -r d; do
    mkdir -p "$d"
    parent=${d%/*}
    # A v1 cpuset cgroup takes no task until it has cpus and mems.
    if [[ -f "$d/cpuset.cpus" && -z "$(cat "$d/cpuset.cpus")" ]]; then
      cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$d/cpuset.mems"
    fi
  done < <(cgroup_dirs "$CG_NODE"; cgroup_dirs "$CG_ROOT")
}

# cgroup_pids: every process in the node's and the pods' cgroups (containers included).
cgroup_pids() {
  local d
  while read -r d; do
    [[ -d "$d" ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done < <(cgroup_dirs "$CG_NODE"; cgroup_dirs "$CG_ROOT")
}

cgroups_remove() {
  local d
  while read -r d; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ ! -d "$d" ]] || say "WARNING: cgroup $d could not be removed"
  done < <(cgroup_dirs "$CG_NODE"; cgroup_dirs "$CG_ROOT")
}

# ---- certificates and kubeconfigs ---------------------------------------------------------------
# cert NAME SUBJECT EXT: a key and a certificate signed by the cluster CA.
cert() {
  local d=$STATE/pki
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null
  printf '%b' "$3" >"$d/$1.ext"
  openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 7 \
    -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null
}

# kubeconfig NAME: a kubeconfig for client certificate NAME against the node's API server.
kubeconfig() {
  cat >"$STATE/pki/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: outrigger
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$STATE/pki/$1.crt", client-key: "$STATE/pki/$1.key"}
contexts:
- name: outrigger
  context: {cluster: outrigger, user: $1}
current-context: outrigger
EOF
}

make_pki() {
  local d=$STATE/pki client='extendedKeyUsage=clientAuth\n' c
  mkdir -p "$d"
  chmod 700 "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=outrigger-cluster-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
  cert admin "/O=system:masters/CN=outrigger-admin" "$client"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
  cert controller-manager "/CN=system:kube-controller-manager" "$client"
  cert scheduler "/CN=system:kube-scheduler" "$client"
  cert kube-proxy "/CN=system:kube-proxy" "$client"
  for c in admin kubelet controller-manager scheduler kube-proxy; do kubeconfig "$c"; done
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  chmod 600 "$d"/*.key
}

# ---- configuration files ------------------------------------------------------------------------
write_configs() {
  local c=$STATE/config
  mkdir -p "$c/cni" "$c/certs.d/$REGISTRY"
  cat >"$c/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "/run/containerd"
# aufs/btrfs/zfs/devmapper do not apply here; "opt" would create /opt/containerd on the host.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/pause:3.10"
  # root lacks CAP_SYS_RESOURCE on this VM: never lower a container's oom_score_adj below ours.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$c/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$c/certs.d"
EOF
  cat >"$c/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
  # Images the Flux tree names (ghcr.io/outrigger-mesh/..., ghcr.io/stefanprodan/podinfo,
  # cert-manager's chart's quay.io/jetstack/..., Loki's chart's docker.io/grafana/loki,
  # kube-prometheus-stack's quay.io/prometheus/... and registry.k8s.io/kube-state-metrics/...) and
  # the Gateway API conformance suite's manifests name (registry.k8s.io/gateway-api/echo-basic,
  # registry.k8s.io/coredns/coredns) come from the node's registry under the same path: the
  # cluster's one swap for the image registries (docs/cluster.md, "GitOps"). The namespace has no
  # route out, so the upstream registries themselves are never tried.
  local upstream
  for upstream in ghcr.io quay.io docker.io registry.k8s.io; do
    mkdir -p "$c/certs.d/$upstream"
    cat >"$c/certs.d/$upstream/hosts.toml" <<EOF
server = "https://$upstream"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
  done
  cat >"$c/cni/10-outrigger.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "outrigger",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$c/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: "$STATE/registry"}
  delete: {enabled: true}
http:
  addr: ":5000"
EOF
  : >"$c/resolv.conf"
  cat >"$c/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host is cgroup v1: kubelet 1.36 refuses it unless told (deprecated; docs/cluster.md).
failCgroupV1: false
# containerd 1.6 has no CRI RuntimeConfig call, so kubelet cannot ask it for the driver.
cgroupDriver: cgroupfs
cgroupRoot: /$CG_ROOT
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$STATE/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: "$c/resolv.conf"
failSwapOn: false
serializeImagePulls: false
# The state folder's disk is shared with everything else on this machine: evict only when nearly full.
evictionHard: {memory.available: "100Mi", nodefs.available: "$EVICT_FREE_PCT%", imagefs.available: "$EVICT_FREE_PCT%", nodefs.inodesFree: "$EVICT_FREE_PCT%"}
imageGCHighThresholdPercent: 100
EOF
  cat >"$c/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$STATE/pki/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
# Masquerade Service traffic so a pod reaching a Service backed by a pod on the same bridge gets
# its reply back through the bridge's address (no dependence on br_netfilter).
iptables: {masqueradeAll: true}
# 0 = leave the kernel's conntrack limits alone: nf_conntrack_max and the hash size are host-wide.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ---- images -------------------------------------------------------------------------------------
# The images the node itself needs are built here without a registry or Docker: buildah with a
# private storage root (vfs: no mounts), `from scratch`, never `run` (no network state), committed
# into an OCI archive. Part B of issue 17 builds the project's images the same way.
buildah_() { buildah --root "$STATE/buildah/root" --runroot "$STATE/buildah/run" --storage-driver vfs "$@"; }

# image_from_files ARCHIVE CMD_JSON SRC:DEST...: a scratch image holding these files.
image_from_files() {
  local archive=$1 cmd=$2 ctr spec
  shift 2
  ctr=$(buildah_ from scratch)
  for spec in "$@"; do
    buildah_ copy "$ctr" "${spec%%:*}" "${spec#*:}" >/dev/null
  done
  buildah_ config --cmd "$cmd" "$ctr"
  buildah_ commit --quiet --format oci "$ctr" "oci-archive:$archive" >/dev/null
  buildah_ rm "$ctr" >/dev/null
}

# image_pause ARCHIVE: the sandbox (pause) image, compiled from build/pause/linux/pause.c of the
# pinned k8s.io/kubernetes module, static, so the image holds that one file.
image_pause() {
  local src
  src=$(cd "$OUTRIGGER_ROOT/tools/kube-node" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -f "$src/build/pause/linux/pause.c" ]] || fail "pause.c not found in the k8s.io/kubernetes module ($src)"
  gcc -Os -static -DVERSION="$KUBERNETES_VERSION" -o "$STATE/images/pause" "$src/build/pause/linux/pause.c"
  strip "$STATE/images/pause"
  image_from_files "$1" '["/pause"]' "$STATE/images/pause:/pause"
}

# image_busybox ARCHIVE: Debian's static busybox as /bin/busybox (+ /bin/sh), for tests.
image_busybox() {
  local b
  b=$(command -v busybox)
  image_from_files "$1" '["/bin/sh"]' "$b:/bin/busybox" "$b:/bin/sh"
}

# push ARCHIVE REF: an OCI archive into the registry, from inside the namespace (plain http).
push() {
  local archive=$1 ref=$2
  [[ -f "$archive" ]] || fail "no such archive: $archive"
  in_node skopeo copy --quiet --dest-tls-verify=false "oci-archive:$archive" "docker://$REGISTRY/$ref"
  say "pushed $archive as $REGISTRY/$ref"
}

build_node_images() {
  mkdir -p "$STATE/images"
  image_pause "$STATE/images/pause.tar"
  push "$STATE/images/pause.tar" pause:3.10
  image_busybox "$STATE/images/busybox.tar"
  push "$STATE/images/busybox.tar" busybox:test
}

# ---- the namespaces ---------------------------------------------------------------------------
# ns_ids: the holder's network and mount namespace ids (net:[N] mnt:[M]), kept in $STATE/ns-ids so
# `down` and the leak check find every process still in either one.
ns_ids() { readlink "/proc/$(holder_pid)/ns/net" "/proc/$(holder_pid)/ns/mnt"; }

# ns_pids: every process in the node's network or mount namespace.
ns_pids() {
  [[ -s "$STATE/ns-ids" ]] || return 0
  local f pid id net mnt
  { read -r net; read -r mnt; } <"$STATE/ns-ids"
  for f in /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt; do
    id=$(readlink "$f" 2>/dev/null) || continue
    if [[ "$id" == "$net" || "$id" == "$mnt" ]]; then
      pid=${f#/proc/}
      echo "${pid%%/*}"
    fi
  done
}

make_netns() {
  local n=(nsenter --target "$(holder_pid)" --net --)
  "${n[@]}" ip link set lo up
  # A veth pair with both ends inside (this kernel has no dummy links): node0 carries the node IP.
  "${n[@]}" ip link add node0 type veth peer name node0-peer
  "${n[@]}" ip addr add "$NODE_IP/${NODE_CIDR#*/}" dev node0
  "${n[@]}" ip link set node0-peer up
  "${n[@]}" ip link set node0 up
  "${n[@]}" ip link add "$BRIDGE" type bridge
  "${n[@]}" ip addr add "$POD_GATEWAY/${POD_CIDR#*/}" dev "$BRIDGE"
  "${n[@]}" ip link set "$BRIDGE" up
  # Service addresses are routed to node0: without a DNAT by kube-proxy a packet to
  # one goes nowhere; there is no default route to follow out of the namespace.
  "${n[@]}" ip route add "$SERVICE_CIDR" dev node0
  "${n[@]}" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  if "${n[@]}" ip route show default | grep -q .; then fail "the node's namespace has a default route"; fi
}

# The holder: a process in a new network namespace and a private mount namespace in which the
# node's files are bind mounts of folders in $STATE/root. Every daemon joins both (in_node).
start_holder() {
  local r=$STATE/root kv key
  mkdir -p "$r/run" "$r/var/lib" "$r/var/log" "$r/sysctl" "$r/cgroup"
  # A sysfs of the new network namespace (what `ip netns exec` does), with the host's cgroup
  # hierarchies carried over: kubelet and runc manage the pods' cgroups through them.
  local binds="mount --rbind /sys/fs/cgroup $r/cgroup; mount -t sysfs sysfs /sys; mount --rbind $r/cgroup /sys/fs/cgroup"
  for kv in "${NODE_SYSCTLS[@]}"; do
    key=${kv%%=*}
    echo "${kv#*=}" >"$r/sysctl/${key//\//.}"
    binds+="; mount --bind $r/sysctl/${key//\//.} /proc/sys/$key"
  done
  binds+="; mount --bind $r/run /run; mount --bind $r/var/lib /var/lib; mount --bind $r/var/log /var/log"
  # Shared propagation inside the node's namespace, as on a systemd host: kubelet refuses volumes
  # with mountPropagation HostToContainer (the agent's host root) from a private "/". Made
  # after `unshare --propagation private`, so the new peer groups live in this namespace only and
  # nothing propagates to or from the host.
  binds+="; mount --make-rshared /"
  setsid unshare --net --mount --propagation private -- \
    sh -ec "$binds; echo ready >$STATE/holder.ready; exec sleep infinity" \
    >"$STATE/logs/holder.log" 2>&1 </dev/null &
  echo $! >"$STATE/holder.pid"
  local i
  for i in $(seq 1 50); do
    if [[ -f "$STATE/holder.ready" ]]; then
      ns_ids >"$STATE/ns-ids"
      return 0
    fi
    kill -0 "$(holder_pid)" 2>/dev/null || { cat "$STATE/logs/holder.log" >&2; fail "the namespace holder exited"; }
    sleep 0.1
  done
  fail "the namespace holder did not get ready"
}

# daemon NAME CMD...: CMD in the node's namespaces, in the background, logging to logs/NAME.log.
daemon() {
  local name=$1
  shift
  setsid nsenter --target "$(holder_pid)" --mount --net -- "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

# wait_for LABEL LOGNAME CMD...: until CMD succeeds; fails fast if daemon LOGNAME died.
wait_for() {
  local label=$1 name=$2 start_s=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    alive "$name" || { tail -n 30 "$STATE/logs/$name.log" >&2; fail "$name exited (log: $STATE/logs/$name.log)"; }
    (( SECONDS - start_s < READY_TIMEOUT )) || { tail -n 30 "$STATE/logs/$name.log" >&2; fail "$label not ready after $READY_TIMEOUT s"; }
    sleep 0.3
  done
  say "$label ready ($(( SECONDS - start_s )) s)"
}

http_ok() { in_node curl -fsS --max-time 2 "$@"; }
api_ready() { [[ "$(in_node curl -sS --max-time 2 --cacert "$STATE/pki/ca.crt" "https://$NODE_IP:6443/readyz")" == ok ]]; }
node_ready() {
  [[ "$(kubectl_node get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_daemons() {
  local p=$STATE/pki c=$STATE/config
  daemon etcd etcd --name "$NODE_NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --quota-backend-bytes $((1024 * 1024 * 1024))
  # The registry exports traces by default; there is no collector here.
  daemon registry env OTEL_TRACES_EXPORTER=none registry serve "$c/registry.yml"
  daemon containerd containerd --config "$c/containerd.toml"
  wait_for etcd etcd http_ok http://127.0.0.1:2379/health
  daemon kube-apiserver kube-apiserver \
    --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$NODE_IP" --secure-port 6443 \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/admin.crt" --kubelet-client-key "$p/admin.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --enable-priority-and-fairness=false --profiling=false
  wait_for kube-apiserver kube-apiserver api_ready
  daemon kube-controller-manager kube-controller-manager --kubeconfig "$p/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$p/controller-manager.kubeconfig" --authorization-kubeconfig "$p/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
  daemon kube-scheduler kube-scheduler --kubeconfig "$p/scheduler.kubeconfig" \
    --authentication-kubeconfig "$p/scheduler.kubeconfig" --authorization-kubeconfig "$p/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  wait_for registry registry http_ok "http://$REGISTRY/v2/"
  wait_for containerd containerd in_node ctr --address /run/containerd/containerd.sock version
  build_node_images
  daemon kubelet kubelet --config "$c/kubelet.yaml" --kubeconfig "$p/kubelet.kubeconfig" \
    --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" --v=1
  daemon kube-proxy kube-proxy --config "$c/kube-proxy.yaml"
  wait_for "node $NODE_NAME" kubelet node_ready
  # Usable means a pod can be created (its namespace's service account exists) and a Service
  # answers (kube-proxy has synced its rules once).
  wait_for "service account default/default" kube-controller-manager kubectl_node get serviceaccount default
  wait_for kube-proxy kube-proxy http_ok http://127.0.0.1:10256/healthz
  wait_for kube-scheduler kube-scheduler http_ok -k https://127.0.0.1:10259/healthz
}

up() {
  need_tools
  if [[ -f "$STATE/up.done" ]] && kill -0 "$(holder_pid)" 2>/dev/null && node_ready; then
    say "already running"
    echo "$STATE/pki/admin.kubeconfig"
    return 0
  fi
  down_quiet
  local start_s=$SECONDS
  mkdir -p "$STATE/logs"
  check_disk
  chmod 700 "$STATE"
  say "state in $STATE, node IP $NODE_IP"
  # Everything started from here on (daemons, shims, their children) lives in the node's cgroups.
  cgroups_create
  local d
  while read -r d; do echo "$$" >"$d/cgroup.procs"; done < <(cgroup_dirs "$CG_NODE")
  make_pki
  write_configs
  start_holder
  make_netns
  start_daemons
  : >"$STATE/up.done"
  say "up in $(( SECONDS - start_s )) s: kubectl via 'scripts/cluster.sh kubectl', kubeconfig $STATE/pki/admin.kubeconfig"
  echo "$STATE/pki/admin.kubeconfig"
}

# running PID: PID exists and has not exited. The daemons outlive `up`, so their parent is init,
# which may reap them seconds later: a zombie counts as stopped.
running() { [[ -r "/proc/$1/stat" && "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }

# stop_pid NAME: TERM, up to 10 s grace, then KILL; only PIDs this script recorded.
stop_pid() {
  local pid i
  [[ -f "$STATE/$1.pid" ]] || return 0
  pid=$(cat "$STATE/$1.pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    running "$pid" || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$STATE/$1.pid"
}

down_quiet() {
  local i name pids
  # Daemons first, in reverse start order (kubelet before containerd, apiserver before etcd).
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[i]}
    stop_pid "$name"
  done
  # Then whatever is left in the node's cgroups: container shims and the containers themselves.
  for i in $(seq 1 50); do
    pids=$({ cgroup_pids; ns_pids; } | sort -u | grep -vx "$$" || true)
    [[ -n "$pids" ]] || break
    # shellcheck disable=SC2086  # one PID per word
    kill -9 $pids 2>/dev/null || true
    sleep 0.2
  done
  # The holder last: with it go both namespaces and every mount made inside them.
  stop_pid holder
  pids=$(ns_pids)
  [[ -z "$pids" ]] || say "WARNING: processes still in the node's namespaces: $pids"
  # This process may have joined the node's cgroups in `up`; leave them before removing them.
  local d
  while read -r d; do
    if [[ -f "$d/cgroup.procs" ]] && grep -qx "$$" "$d/cgroup.procs"; then echo "$$" >"${d%/*}/cgroup.procs"; fi
  done < <(cgroup_dirs "$CG_NODE")
  cgroups_remove
  # Only ever a directory this script created (it holds its pki/); the logs stay for debugging.
  if [[ -d "$STATE" && ( -d "$STATE/pki" || -f "$STATE/holder.pid" ) ]]; then
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  fi
}

status() {
  if [[ -f "$STATE/up.done" ]] && kill -0 "$(holder_pid)" 2>/dev/null && node_ready; then
    say "running: node $NODE_NAME Ready (holder pid $(holder_pid))"
    kubectl_node get nodes -o wide >&2
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down_quiet; say "down" ;;
  status) status ;;
  kubeconfig) [[ -f "$STATE/pki/admin.kubeconfig" ]] || fail "not up"; echo "$STATE/pki/admin.kubeconfig" ;;
  kubectl) shift; kubectl_node "$@" ;;
  exec) shift; [[ $# -gt 0 ]] || fail "usage: $0 exec CMD..."; in_node "$@" ;;
  push) [[ $# -eq 3 ]] || fail "usage: $0 push ARCHIVE NAME:TAG"; push "$2" "$3" ;;
  registry) echo "$REGISTRY" ;;
  *) sed -n '/^# usage:/,/^# State dir/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
