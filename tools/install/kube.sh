# shellcheck shell=bash
# kube-apiserver for tests, built from the k8s.io/kubernetes module with the wrapper module in
# tools/kube-apiserver (it replaces each k8s.io/* staging module with its published version).
# scripts/kube-test-env.sh runs it against Debian's etcd.

# kube_ldflags: the version stamps hack/lib/version.sh would set for $KUBERNETES_VERSION (the
# binaries report them at /version and in --version).
kube_ldflags() {
  local v=$KUBERNETES_VERSION minor pkg ldflags=""
  minor=${v#v1.}
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  printf '%s' "$ldflags"
}

# kube_wrapper_check DIR: the wrapper module tools/DIR must be generated for $KUBERNETES_VERSION.
kube_wrapper_check() {
  grep -q "require k8s.io/kubernetes $KUBERNETES_VERSION\$" "tools/$1/go.mod" \
    || die "tools/$1/go.mod is not for $KUBERNETES_VERSION: run tools/kube-apiserver/regen.sh $KUBERNETES_VERSION tools/$1"
}

install_kube_apiserver() {
  go_env_setup
  kube_wrapper_check kube-apiserver
  install_go_tools "kube-apiserver|$KUBERNETES_VERSION|wrapper:kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver|$(kube_ldflags)"
  log "version kube-apiserver $("$OUTRIGGER_TOOLS/bin/kube-apiserver" --version), etcd $(etcd --version 2>/dev/null | head -n 1)"
}
