# The Gateway API conformance suite's backend (sigs.k8s.io/gateway-api/conformance/echo-basic) on
# the local runtime base, as upstream's docker/Dockerfile.echo-basic lays it out on distroless
# static:nonroot: the binary at /echo-basic as ENTRYPOINT (the suite's manifests give no command).
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE}
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=${NAME} org.opencontainers.image.version=${VERSION} \
  org.opencontainers.image.source=https://github.com/kubernetes-sigs/gateway-api
COPY binary /echo-basic
USER 65532:65532
ENTRYPOINT ["/echo-basic"]
