#!/usr/bin/env bash
# The local single-node cluster (scripts/cluster.sh, docs/cluster.md): up, a pod from the cluster's
# registry answering on its pod IP and behind a Service, down, and a host left exactly as before.
# Needs root and scripts/tools.sh step cluster; a missing piece is skip_or_fail (scripts/lib/skip.sh).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"
[[ $(id -u) -eq 0 ]] || { skip_or_fail check-cluster "needs root (network and mount namespaces, cgroups)"; exit 0; }
for t in kubelet kube-apiserver registry containerd buildah skopeo; do
  command -v "$t" >/dev/null 2>&1 || { skip_or_fail check-cluster "$t not installed (scripts/tools.sh apt cluster)"; exit 0; }
done
echo "check-cluster: shellcheck"
shellcheck -x scripts/cluster.sh scripts/check-cluster.sh tests/cluster/node-test.sh scripts/cluster-e2e.sh scripts/lib/host-snapshot.sh
echo "check-cluster: tests/cluster/node-test.sh"
tests/cluster/node-test.sh
