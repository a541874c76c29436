# The sandbox (pause) image, as registry.k8s.io/pause lays it out: one static binary. Build
# context: a folder holding `pause`, compiled by scripts/images.sh from build/pause/linux/pause.c
# of the pinned k8s.io/kubernetes module.
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
