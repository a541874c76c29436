# shellcheck shell=bash
# The Gateway API conformance suite (GATEWAY_API_VERSION in tools/versions.sh) as the test binary
# $OUTRIGGER_TOOLS/bin/gateway-conformance, its backend $OUTRIGGER_TOOLS/bin/gateway-echo-basic (both
# from the wrapper module tools/gateway-conformance) and coredns (COREDNS_VERSION, the suite's base
# manifests run it) for scripts/images.sh group `gateway-conformance`; the root module stays in the
# module cache for scripts/gateway-crds.sh (the chart's CRDs).

install_gateway_conformance() {
  go_env_setup
  local coredns_ldflags="-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
  # CGO off: the images run them on the runtime base, as upstream runs them on distroless static.
  CGO_ENABLED=0 install_go_tools \
    "gateway-conformance|$GATEWAY_API_VERSION|wrapper-test:gateway-conformance:sigs.k8s.io/gateway-api/conformance|" \
    "gateway-echo-basic|$GATEWAY_API_VERSION|wrapper:gateway-conformance:sigs.k8s.io/gateway-api/conformance/echo-basic|" \
    "coredns|$COREDNS_VERSION|github.com/coredns/coredns@$COREDNS_VERSION|$coredns_ldflags"
  keep_modules_cached "the chart's Gateway API CRDs" "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  # The suite's flags are registered by its package; -h lists them (exit status 0 with -h is not
  # guaranteed by the testing package, so the listing is what is checked). Captured first: piped
  # into `grep -q`, which exits at the first match, the binary could die of SIGPIPE mid-listing and
  # pipefail would fail the step now and then.
  local usage
  usage="$("$GOBIN/gateway-conformance" -h 2>&1 || true)"
  grep -q -- '-gateway-class' <<<"$usage" || die "gateway-conformance -h lists no -gateway-class"
  "$GOBIN/coredns" -version >/dev/null || die "coredns -version failed"
  log "version gateway-api conformance $GATEWAY_API_VERSION (+ echo-basic), coredns $COREDNS_VERSION"
}
