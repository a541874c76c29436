# shellcheck shell=bash
# host_snapshot FILE [STATE_DIR]: everything of the host that the local cluster
# (scripts/cluster.sh) could leave behind, in a stable order: iptables/nft rules, mounts, network
# namespaces, links, addresses and routes, cgroups, kubelet's sysctls, node files, and processes
# whose command line names STATE_DIR. Taken before `up` and after `down`; the two must be equal.
# Shared by tests/cluster/node-test.sh and scripts/cluster-e2e.sh.
host_snapshot() {
  local out=$1 state=${2:-${OUTRIGGER_CLUSTER_DIR:-/tmp/outrigger-cluster}}
  {
    echo "## iptables"
    local save
    for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
      command -v "$save" >/dev/null && "$save" 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]$//'
    done
    echo "## nft"
    nft list ruleset
    echo "## mounts"
    awk '{ print $1, $2, $3 }' /proc/mounts | sort
    echo "## netns"
    ip netns list
    echo "## links"
    ip -o link show | awk -F': ' '{ print $2 }' | sort
    echo "## addresses and routes"
    ip -o addr show | awk '{ print $2, $3, $4 }' | sort
    ip route show table all | sort
    echo "## cgroups"
    find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d | sort
    echo "## sysctls"
    sysctl kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom \
      kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward \
      net.bridge.bridge-nf-call-iptables net.netfilter.nf_conntrack_max 2>&1
    echo "## node files"
    local f
    for f in /run/containerd /run/netns /var/lib/kubelet /var/lib/cni /var/lib/containerd /var/log/pods \
      /var/log/containers /etc/cni /opt/cni /opt/containerd /etc/kubernetes; do
      [[ -e "$f" ]] && echo "exists $f"
    done
    echo "## processes of the state dir"
    pgrep -af -- "$state" || true
  } >"$out"
}

# host_diff BEFORE AFTER: `diff -u` of two host_snapshot files (status 1 when they differ), except
# that a cgroup present before and gone after is not a difference: the host's own process
# supervisor makes and removes a cgroup per job while the cluster runs, and a cgroup that went away
# is nothing left behind. A cgroup that appeared still is.
host_diff() {
  local before=$1 after=$2
  diff -u --label "$before" --label "$after" <(awk -v after="$after" '
    BEGIN { while ((getline line < after) > 0) { if (line ~ /^## /) sec = line; if (sec == "## cgroups") kept[line] = 1 } }
    /^## / { sec = $0 }
    sec == "## cgroups" && !/^## / && !($0 in kept) { next }
    { print }' "$before") "$after"
}

# ns_processes_of IDS_FILE: processes still in a network or mount namespace listed (one id per
# line, as readlink prints them) in IDS_FILE, e.g. the node's $STATE/ns-ids saved after `up`.
ns_processes_of() {
  local f ids=$1
  [[ -s "$ids" ]] || return 0
  for f in /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt; do
    grep -qxF -- "$(readlink "$f" 2>/dev/null)" "$ids" && echo "${f%/ns/*}"
  done
  return 0
}
