# shellcheck shell=bash
# The local single-node cluster of scripts/cluster.sh: kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy and kubectl built from k8s.io/kubernetes with the wrapper module
# tools/kube-node (same version and version stamps as kube-apiserver, which this step builds too),
# and the image registry from github.com/distribution/distribution/v3. The container runtime,
# CNI plugins and image tools are Debian packages pinned in APT_PINS (step apt); this step checks
# that they are there, because without them the cluster cannot start.

CLUSTER_KUBE_COMMANDS=(kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)
# What scripts/cluster.sh runs from the Debian packages (containerd, runc, CNI plugins, buildah,
# skopeo, busybox-static, gcc for the pause binary).
CLUSTER_DEBIAN_PROGRAMS=(containerd ctr runc buildah podman skopeo mmdebstrap busybox gcc
  /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/portmap)

install_cluster() {
  local prog missing=()
  for prog in "${CLUSTER_DEBIAN_PROGRAMS[@]}"; do
    command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
  done
  [[ ${#missing[@]} -eq 0 ]] || die "missing from the Debian packages of step apt: ${missing[*]} (run scripts/tools.sh apt)"
  install_kube_apiserver
  kube_wrapper_check kube-node
  local ldflags cmd specs=()
  ldflags=$(kube_ldflags)
  for cmd in "${CLUSTER_KUBE_COMMANDS[@]}"; do
    specs+=("$cmd|$KUBERNETES_VERSION|wrapper:kube-node:k8s.io/kubernetes/cmd/$cmd|$ldflags")
  done
  specs+=("registry|$REGISTRY_VERSION|github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION|-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION")
  install_go_tools "${specs[@]}"
  log "version $(kubelet --version), containerd $(containerd --version | awk '{ print $3 }'), runc $(runc --version | awk 'NR == 1 { print $3 }'), registry $(registry --version | awk '{ print $NF }')"
}
