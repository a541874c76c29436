# shellcheck shell=bash
# kube-apiserver for tests, built from the k8s.io/kubernetes module with the wrapper module in
# tools/kube-apiserver (it replaces each k8s.io/* staging module with its published version).
# scripts/kube-test-env.sh runs it against Debian's etcd.

install_kube_apiserver() {
  go_env_setup
  local v=$KUBERNETES_VERSION minor ldflags=""
  minor=${v#v1.}
  minor=${minor%%.*}
  # The version stamps hack/lib/version.sh would set (the API server reports them at /version).
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  grep -q "require k8s.io/kubernetes $v\$" tools/kube-apiserver/go.mod \
    || die "tools/kube-apiserver/go.mod is not for $v: run tools/kube-apiserver/regen.sh $v"
  install_go_tools "kube-apiserver|$v|wrapper:kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver|$ldflags"
  log "version kube-apiserver $("$OUTRIGGER_TOOLS/bin/kube-apiserver" --version), etcd $(etcd --version 2>/dev/null | head -n 1)"
}
