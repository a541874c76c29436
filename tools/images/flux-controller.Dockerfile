# A Flux controller (FLUX_CONTROLLERS in tools/versions.sh) on the local runtime base: the binary
# scripts/tools.sh (step flux) built from the controller's Go module, started with the arguments of
# the Deployment scripts/flux-install-manifests.sh lays out. The exec-form ENTRYPOINT cannot expand
# a build argument, so every controller sits at the same path and the title label names it.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE}
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=${NAME} org.opencontainers.image.version=${VERSION}
COPY binary /usr/local/bin/flux-controller
# Upstream's images run as 65534 (nobody); numeric, so runAsNonRoot can be verified.
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/flux-controller"]
