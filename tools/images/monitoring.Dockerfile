# The local node's monitoring images (scripts/tools.sh step monitoring) on the local runtime base,
# one build target each: the binary at the path upstream's image has it, because the operator and
# the chart start them by path (prometheus-operator sets the config reloader's command to
# /bin/prometheus-config-reloader) or by the image's ENTRYPOINT (Prometheus, Alertmanager,
# kube-state-metrics and the operator get arguments only). The exec-form ENTRYPOINT cannot expand a
# build argument, hence one target per image (scripts/images.sh passes --target NAME).
# Upstream's images run as 65534 (nobody); numeric, so runAsNonRoot can be verified. The chart's
# pod security contexts set their own user anyway.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
FROM ${RUNTIME_IMAGE} AS base
ARG NAME
ARG VERSION
LABEL org.opencontainers.image.title=${NAME} org.opencontainers.image.version=${VERSION}
USER 65534:65534

FROM base AS prometheus-operator
COPY binary /bin/operator
EXPOSE 8080
ENTRYPOINT ["/bin/operator"]

FROM base AS prometheus-config-reloader
COPY binary /bin/prometheus-config-reloader
ENTRYPOINT ["/bin/prometheus-config-reloader"]

# Prometheus without its web UI assets (tools/versions.sh says why): the API and /-/ready answer.
FROM base AS prometheus
COPY binary /bin/prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

FROM base AS alertmanager
COPY binary /bin/alertmanager
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]

FROM base AS kube-state-metrics
COPY binary /kube-state-metrics
EXPOSE 8080 8081
ENTRYPOINT ["/kube-state-metrics", "--port=8080", "--telemetry-port=8081"]
