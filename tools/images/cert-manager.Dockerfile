# A cert-manager binary (CERTMANAGER_BINARIES in tools/versions.sh) on the local runtime base: what
# upstream's hack/containers/Containerfile.NAME does on distroless static:nonroot (user 65532, the
# binary as ENTRYPOINT, the licence under /licenses). The exec-form ENTRYPOINT cannot expand a build
# argument, so every binary sits at the same path and the title label names it.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE}
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=cert-manager-${NAME} org.opencontainers.image.version=${VERSION} \
  org.opencontainers.image.source=https://github.com/cert-manager/cert-manager
COPY LICENSE /licenses/LICENSE
COPY binary /app/cmd/cert-manager
# Numeric, so the chart's runAsNonRoot can be verified (upstream's base is the same user).
USER 65532:65532
ENTRYPOINT ["/app/cmd/cert-manager"]
