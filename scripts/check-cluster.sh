#!/usr/bin/env bash
# The local single-node cluster (scripts/cluster.sh, docs/cluster.md): up, a pod from the cluster's
# registry answering on its pod IP and behind a Service, down, and a host left exactly as before.
# Needs root and scripts/tools.sh step cluster; outside CI a missing piece prints SKIPPED.
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"
skip() {
  if [[ "${CI:-}" == true ]]; then
    echo "check-cluster: FAIL: $* (required in CI)" >&2
    exit 1
  fi
  echo "check-cluster: SKIPPED: $*"
  exit 0
}
[[ $(id -u) -eq 0 ]] || skip "needs root (network and mount namespaces, cgroups)"
for t in kubelet kube-apiserver registry containerd buildah skopeo; do
  command -v "$t" >/dev/null 2>&1 || skip "$t not installed (scripts/tools.sh apt cluster)"
done
echo "check-cluster: shellcheck"
shellcheck -x scripts/cluster.sh scripts/check-cluster.sh tests/cluster/node-test.sh
echo "check-cluster: tests/cluster/node-test.sh"
tests/cluster/node-test.sh
