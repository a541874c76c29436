# Loki (LOKI_VERSION in tools/versions.sh) on the local runtime base: what upstream's
# cmd/loki/Dockerfile does on distroless static:nonroot (the binary as /usr/bin/loki, user 10001,
# port 3100, its docker config as the default), with the binary scripts/tools.sh (step loki) built.
# The Helm chart mounts its own config over that default and its data directory on a volume.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE}
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=${NAME} org.opencontainers.image.version=${VERSION} \
  org.opencontainers.image.source=https://github.com/grafana/loki
COPY LICENSE /licenses/LICENSE
COPY loki-docker-config.yaml /etc/loki/local-config.yaml
COPY binary /usr/bin/loki
# Numeric, so the chart's runAsNonRoot can be verified (the chart runs it as 10001 too).
USER 10001:10001
EXPOSE 3100
ENTRYPOINT ["/usr/bin/loki"]
CMD ["-config.file=/etc/loki/local-config.yaml"]
