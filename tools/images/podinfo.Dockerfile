# podinfo (the demo workload of the local cluster) as its upstream image lays it out, on the local
# runtime base: ./podinfo in /home/app (the chart runs `./podinfo`), its ui/ beside it, podcli on
# PATH (the chart's exec probes). Build context: a folder scripts/images.sh fills from the Go
# module (statically linked binaries and the module's ui/).
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
FROM ${RUNTIME_IMAGE}
WORKDIR /home/app
COPY podinfo ./podinfo
COPY ui ./ui
COPY podcli /usr/local/bin/podcli
# Numeric, so Pod Security "restricted" can verify runAsNonRoot.
USER 65532:65532
# 9898 http, 9797 metrics, 9999 grpc (the chart's defaults).
EXPOSE 9898 9797 9999
CMD ["./podinfo"]
