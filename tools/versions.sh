# shellcheck shell=bash
# Every pinned version of the verification toolchain, in one place. scripts/tools.sh sources this;
# docs/tools.md explains each line. Changing a pin here makes the next tools.sh run rebuild that tool
# (stamp files in $OUTRIGGER_TOOLS/stamps carry the version).
# shellcheck disable=SC2034  # consumed by the tools/install/*.sh files that source this one

# Debian 12 (bookworm) packages, exact `name=version` as `apt-cache policy` showed on 2026-11-26.
# Debian keeps only the newest build of a package per suite, so a security update can retire a pin:
# tools.sh then fails with a clear message; bump the pin (or OUTRIGGER_APT_ALLOW_DRIFT=1 for one run).
APT_PINS=(
  prometheus=2.42.0+ds-5+deb12u1
  nginx=1.22.1-9+deb12u12
  haproxy=2.6.12-1+deb12u4
  wrk=4.1.0-3+b2
  nghttp2-client=1.52.0-1+deb12u3
  etcd-server=3.4.23-4+b4
  etcd-client=3.4.23-4+b4
  iptables=1.8.9-2
  nftables=1.0.6-2+deb12u2
  iproute2=6.1.0-3
  shellcheck=0.9.0-1
  curl=7.88.1-10+deb12u15
  openssl=3.0.22-1~deb12u2
  ca-certificates=20250419~deb12u2
  jq=1.6-2.1+deb12u3
  git=1:2.39.5-0+deb12u3
  procps=2:4.0.2-3
  psmisc=23.6-1
  # bench/proxy-instructions.sh only (callgrind instruction counts)
  valgrind=1:3.19.0-1
  # scripts/cluster.sh (step cluster): container runtime, CNI plugins, image tools, `apt-cache
  # policy` on 2026-12-05; gcc (already on the image) compiles the pause binary
  containerd=1.6.20~ds1-1+deb12u3
  runc=1.1.5+ds1-1+deb12u1
  containernetworking-plugins=1.1.1+ds1-3+b5
  podman=4.3.1+ds1-8+deb12u1+b3
  buildah=1.28.2+ds1-3+deb12u1+b3
  mmdebstrap=1.3.5-7
  skopeo=1.9.3+ds1-1+b10
  busybox-static=1:1.35.0-4+deb12u1+b1
  # age + age-keygen: the key type sops encrypts the GitOps tree's Secrets to (`apt-cache policy
  # age` on 2026-12-06)
  age=1.1.1-1+b3
)

# Python tools (PyPI), installed into $OUTRIGGER_TOOLS/venv; transitive pins in tools/python/*.lock.
PY_TOOLS_REQ=tools/python/requirements.txt
PY_TOOLS_LOCK=tools/python/requirements.lock
CHECKOV_REQ=tools/python/checkov-requirements.txt
CHECKOV_LOCK=tools/python/checkov-requirements.lock

# Go-built CLIs (Go module proxy), `go install MODULE/PKG@VERSION` with GOBIN=$OUTRIGGER_TOOLS/bin.
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
ACTIONLINT_VERSION=v1.7.12
KUSTOMIZE_VERSION=v5.8.2   # v5.8.3 needs Go 1.27
# sops encrypts the Secrets in the Flux tree to an age key (Debian has no sops package). Its own
# go.mod has no replace, so `go install` builds it; the version string is compiled in (no ldflags).
SOPS_VERSION=v3.13.3
# flux2 v2.9.5 (the Flux release whose CRDs are used below): its CLI is not built, see docs/tools.md.
FLUX_VERSION=v2.9.5
H2SPEC_VERSION=v2.2.1+incompatible
# Flux controllers built here (scripts/tools.sh step `flux`, tools/install/flux.sh), as NAME@VERSION,
# each from its wrapper module tools/flux-controllers/NAME (regen.sh there). The versions flux2
# $FLUX_VERSION requires, except where the module proxy refuses that root module (403 "This module
# version is not available"); then the nearest served lower patch (commands tried: docs/tools.md).
# scripts/flux-install-manifests.sh lays them out like `flux install`, CRDs from the same modules.
FLUX_CONTROLLERS=(
  source-controller@v1.9.5
  kustomize-controller@v1.9.5
  helm-controller@v1.6.4
  notification-controller@v1.9.3        # v1.9.4 refused
  image-reflector-controller@v1.2.4     # v1.2.5 refused
  image-automation-controller@v1.2.4    # v1.2.5 refused
)
# Dependency substitutions in those wrappers (a `replace` in the wrapper's go.mod): the version the
# controller requires is refused, so the nearest served lower one is used.
#   github.com/fluxcd/pkg/artifact v0.18.3 (source-controller) and v0.18.2 (image-reflector-controller)
#   => v0.18.1 (served: v0.18.0, v0.18.1; refused: v0.18.2, v0.18.3, v0.19.0).
# Test-only modules the proxy refuses (e.g. github.com/fluxcd/pkg/helmtestserver v0.40.2) are not
# needed by the binaries and are left out (regen.sh runs `go mod tidy -e`).

# Kubernetes: schemas, kube-apiserver and the node binaries (tools/kube-node) come from the same
# k8s.io/kubernetes module version.
KUBERNETES_VERSION=v1.36.3
# The local cluster's image registry (github.com/distribution/distribution/v3/cmd/registry).
REGISTRY_VERSION=v3.1.2
# CRD sources: Go modules whose zips carry the CRD YAMLs, as MODULE@VERSION:DIR. Flux controller
# versions are the ones flux2 $FLUX_VERSION requires (its go.mod).
CRD_YAML_MODULES=(
  github.com/fluxcd/source-controller@v1.9.5:config/crd/bases
  github.com/fluxcd/kustomize-controller@v1.9.5:config/crd/bases
  github.com/fluxcd/helm-controller@v1.6.4:config/crd/bases
  github.com/cert-manager/cert-manager@v1.21.2:deploy/crds
  # The version kube-prometheus-stack KPS_CHART_VERSION installs (its appVersion).
  github.com/prometheus-operator/prometheus-operator@v0.93.1:example/prometheus-operator-crd
  # experimental first, then standard: a kind in both ends up with the standard-channel schema.
  sigs.k8s.io/gateway-api@v1.6.3:config/crd/experimental
  sigs.k8s.io/gateway-api@v1.6.3:config/crd/standard
)
# The Go module proxy refuses the root modules of these three Flux controllers (403 "This module
# version is not available"), so their CRDs are generated with controller-gen from the published
# `api` modules (the Go types the controllers' own CRDs are generated from), as MODULE@VERSION.
CONTROLLER_GEN_VERSION=v0.19.0
CRD_GEN_MODULES=(
  github.com/fluxcd/notification-controller/api@v1.9.4
  github.com/fluxcd/image-reflector-controller/api@v1.2.5
  github.com/fluxcd/image-automation-controller/api@v1.2.5
)

# Terraform: the machine image ships terraform (checked, not installed). Without one, OpenTofu is
# built from the Go module proxy (wrapper module tools/opentofu) and linked as `terraform`.
TERRAFORM_EXPECTED=1.11.4
OPENTOFU_VERSION=v1.10.10
# Providers for the offline filesystem mirror, as NAMESPACE/NAME|GO_MODULE|VERSION. The Go module
# proxy refuses both modules (403 "This module version is not available", every version, even the
# version list), so today the mirror stays empty: docs/tools.md. tools.sh retries on every run.
TF_PROVIDERS=(
  "digitalocean/digitalocean|github.com/digitalocean/terraform-provider-digitalocean|v2.60.0"
  "fluxcd/flux|github.com/fluxcd/terraform-provider-flux|v1.7.0"
)

# cert-manager (scripts/tools.sh step `certmanager`, tools/install/certmanager.sh): controller,
# webhook, cainjector and startupapicheck, each from its module in tools/cert-manager/NAME (regen.sh
# there), and the Helm chart from the root module's deploy/charts/cert-manager.
# The binaries' own modules (cmd/NAME, path github.com/cert-manager/cert-manager/NAME-binary) are
# not served by the module proxy (403 for every version, also as .../cmd/NAME), so their sources are
# copied from the upstream tag CERTMANAGER_SRC_REF: cmd/ is unchanged from v1.21.1 to the tip of
# release-1.21 that could be inspected (only go.mod/go.sum moved), and builds against the root
# module at CERTMANAGER_VERSION, which the proxy serves.
CERTMANAGER_VERSION=v1.21.2
CERTMANAGER_SRC_REF=v1.21.1
CERTMANAGER_BINARIES=(controller webhook cainjector startupapicheck)
# Dependency substitutions (replace in every tools/cert-manager/NAME/go.mod):
#   github.com/Venafi/vcert/v5 v5.13.7 refused (and every v5.12.4..v5.13.6, v5.14.0): v5.13.8, the
#   nearest served one of the same minor (the nearest lower, v5.12.3, is a minor version back).
CERTMANAGER_REPLACES=(
  'github.com/Venafi/vcert/v5 => github.com/Venafi/vcert/v5 v5.13.8'
)

# Gateway API conformance (scripts/tools.sh step `gateway`, tools/install/gateway.sh): the suite
# (`go test -c` of sigs.k8s.io/gateway-api/conformance) and its backend echo-basic, both from the
# wrapper module tools/gateway-conformance at this version (v1.7.0 needs Go 1.27). The chart's CRDs
# (charts/outrigger/crds) come from the root module sigs.k8s.io/gateway-api at the same version.
GATEWAY_API_VERSION=v1.6.3
# The suite's manifests name their images in remote registries; scripts/gateway-conformance.sh
# pushes our builds into the node's registry under exactly the names the GATEWAY-HTTP manifests use
# (tests/cluster/gateway_conformance.py images lists them; scripts/cluster.sh mirrors
# registry.k8s.io there): echo-basic, built once here, under every tag they name (two in v1.6.3),
# and coredns, which the base manifests run as a UDP backend, at the version they name.
GATEWAY_ECHO_IMAGE=registry.k8s.io/gateway-api/echo-basic
COREDNS_IMAGE=registry.k8s.io/coredns/coredns
COREDNS_VERSION=v1.12.2

# Loki on the local node (scripts/tools.sh step `loki`, tools/install/loki.sh): cmd/loki built from
# the wrapper module tools/loki, whose go.mod replaces github.com/grafana/loki/pkg/push by the
# pseudo-version Loki itself requires (Loki's go.mod points it at ./pkg/push, a directory of its
# repository, which a build from the module proxy cannot use; tools/loki/tools.go). Loki's Helm
# chart LOKI_CHART_VERSION ships in the same module (production/helm/loki); scripts/loki-chart.sh
# packages it without its three remote subcharts. The chart's own appVersion (3.6.7) is older than
# the binary: the local values name the image tag LOKI_VERSION without the v.
LOKI_VERSION=v3.7.8
LOKI_CHART_VERSION=6.55.0

# Monitoring on the local node (scripts/tools.sh step `monitoring`, tools/install/monitoring.sh):
# the images kube-prometheus-stack KPS_CHART_VERSION's values.yaml names, built from their Go modules.
# The chart ships in the module github.com/prometheus-community/helm-charts (a pseudo-version: the
# repository has no Go tags), KPS_CHARTS_MODULE_VERSION below, packaged by scripts/kps-chart.sh.
KPS_CHART_VERSION=88.6.1
KPS_CHARTS_MODULE_VERSION=v0.0.0-20260828105119-ed5d7d9b5933
# prometheus-operator and prometheus-config-reloader: the chart's appVersion. Wrapper module
# tools/monitoring/prometheus-operator (regen.sh there), which requires pkg/apis/monitoring and
# pkg/client at this same version (upstream points them at directories of its repository).
PROMETHEUS_OPERATOR_VERSION=v0.93.1
# Prometheus v3.14.0 (values: quay.io/prometheus/prometheus:v3.14.0-distroless) is Go module version
# v0.314.0 (Prometheus 3 tags its Go module v0.3MM.P). Wrapper module tools/monitoring/prometheus;
# built with only the kubernetes service discovery (tags remove_all_sd,enable_kubernetes_sd) and
# without the embedded web UI (no builtinassets tag): the API answers, the UI pages do not.
PROMETHEUS_VERSION=v3.14.0
PROMETHEUS_MODULE_VERSION=v0.314.0
PROMETHEUS_BUILD_TAGS=remove_all_sd,enable_kubernetes_sd
# Alertmanager (values: quay.io/prometheus/alertmanager:v0.34.0): built from a copy of its module
# with a placeholder web UI (the module zip lacks ui/app/dist, an npm build's output that ui/web.go
# embeds; tools/install/monitoring.sh alertmanager_src). The API is unchanged.
ALERTMANAGER_VERSION=v0.34.0
# kube-state-metrics (the kube-state-metrics subchart 8.4.1's appVersion 2.20.0):
# registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0, `go install` as is.
# None of the five versions was refused by the module proxy (2026-12-07); build times on this
# 2-core machine, shared, nice 19, -p=1: docs/tools.md.
KUBE_STATE_METRICS_VERSION=v2.20.0
# Grafana stays off on the local node: the module proxy refuses github.com/grafana/grafana (403,
# every version, even the list), and its frontend needs a Node toolchain and npm registry besides;
# the grafana-community/helm-charts module (the chart's new home) is served, but without a server.
