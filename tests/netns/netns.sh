#!/usr/bin/env bash
# Network-namespace test fabric for end-to-end tests that need more than loopback.
#
# Layout: one *outer* namespace with no default route holds a bridge; each "pod" is its own
# namespace joined to that bridge by a veth pair, on a private test subnet. The root namespace gets
# no interface on the subnet and no route to it, so nothing a test does can leak off the machine:
# clients must run inside the fabric (`netns.sh exec`), never from the root namespace.
#
# Usage:
#   netns.sh up NAME PODS          create NAME's outer namespace and PODS pod namespaces
#   netns.sh exec NAME POD CMD...  run CMD inside pod POD (1-based) of NAME ("outer" for the outer one)
#   netns.sh ip NAME POD           print pod POD's address
#   netns.sh down NAME             delete every namespace of NAME (idempotent)
#   netns.sh with NAME PODS CMD... up, run CMD in the root shell with NETNS_NAME exported, always down
#
# The subnet defaults to 10.231.0.0/24 (OUTRIGGER_NETNS_SUBNET_PREFIX=10.231.0).
set -euo pipefail

prefix="${OUTRIGGER_NETNS_SUBNET_PREFIX:-10.231.0}"

die() { echo "netns.sh: $*" >&2; exit 2; }
outer_ns() { echo "orx-$1-outer"; }
pod_ns() { echo "orx-$1-pod$2"; }
pod_ip() { echo "$prefix.$(( 10 + $2 ))"; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
  command -v ip >/dev/null || die "needs iproute2 (ip)"
}

# Refuses to go on if the namespace has any default route: traffic to the test subnet must have
# nowhere to go but the bridge.
assert_no_default_route() {
  local ns=$1
  if [ -n "$(ip -n "$ns" route show default)" ] || [ -n "$(ip -n "$ns" -6 route show default)" ]; then
    die "namespace $ns has a default route; refusing to continue"
  fi
}

up() {
  local name=$1 pods=$2 outer i ns
  [[ $name =~ ^[a-z0-9]{1,8}$ ]] || die "NAME must be 1-8 lowercase letters/digits (interface names are short)"
  if ! [[ $pods =~ ^[0-9]+$ ]] || [ "$pods" -lt 1 ] || [ "$pods" -gt 200 ]; then die "PODS must be 1..200"; fi
  require_root
  down "$name"
  outer=$(outer_ns "$name")
  ip netns add "$outer"
  ip -n "$outer" link set lo up
  ip -n "$outer" link add br0 type bridge
  ip -n "$outer" addr add "$prefix.1/24" dev br0
  ip -n "$outer" link set br0 up
  for ((i = 1; i <= pods; i++)); do
    ns=$(pod_ns "$name" "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created inside the outer namespace, so no interface ever exists in the root one.
    ip -n "$outer" link add "veth$i" type veth peer name eth0 netns "$ns"
    ip -n "$outer" link set "veth$i" master br0 up
    ip -n "$ns" addr add "$(pod_ip "$name" "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    assert_no_default_route "$ns"
  done
  assert_no_default_route "$outer"
}

down() {
  local name=$1 ns
  require_root
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^orx-$name-(outer|pod[0-9]+)$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns delete "$ns"
  done
}

exec_in() {
  local name=$1 pod=$2 ns
  shift 2
  if [ "$pod" = outer ]; then ns=$(outer_ns "$name"); else ns=$(pod_ns "$name" "$pod"); fi
  ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no namespace $ns (run up first)"
  assert_no_default_route "$ns"
  exec ip netns exec "$ns" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  up) [ $# -eq 2 ] || die "usage: up NAME PODS"; up "$1" "$2" ;;
  down) [ $# -eq 1 ] || die "usage: down NAME"; down "$1" ;;
  exec) [ $# -ge 3 ] || die "usage: exec NAME POD CMD..."; exec_in "$@" ;;
  ip) [ $# -eq 2 ] || die "usage: ip NAME POD"; pod_ip "$1" "$2" ;;
  with)
    [ $# -ge 3 ] || die "usage: with NAME PODS CMD..."
    name=$1 pods=$2
    shift 2
    trap 'down "$name"' EXIT
    trap 'exit 130' INT TERM
    up "$name" "$pods"
    NETNS_NAME=$name "$@"
    ;;
  *) die "usage: netns.sh up|down|exec|ip|with ..." ;;
esac
