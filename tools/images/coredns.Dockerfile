# coredns (COREDNS_VERSION), which the Gateway API conformance suite's base manifests run as a UDP
# backend with `-conf /root/Corefile`: the binary at /coredns as ENTRYPOINT, like upstream's image.
# Upstream runs it as nonroot with a file capability to bind port 53; the manifests drop every
# capability but NET_BIND_SERVICE, so uid 0 with that one capability is the same power without the
# file capability (which an image layer built here would have to carry as an xattr).
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE}
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=${NAME} org.opencontainers.image.version=${VERSION} \
  org.opencontainers.image.source=https://github.com/coredns/coredns
COPY binary /coredns
# hadolint ignore=DL3002
USER 0:0
ENTRYPOINT ["/coredns"]
