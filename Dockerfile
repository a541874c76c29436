# syntax=docker/dockerfile:1
# The image of each Rust daemon (outrigger-proxy, outrigger-agent, outrigger-injector): one file,
# the daemon chosen by build args. Build context: the repository root (the Cargo workspace):
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg PACKAGE=outrigger-proxy --build-arg PORTS="4143 4191" \
#     --build-arg DESCRIPTION="Outrigger sidecar data plane" .
# Each daemon's PACKAGE, DESCRIPTION and PORTS live in one table, IMAGES in
# .github/scripts/release_plan.py, read by release.yml, ci.yml and scripts/images.sh.
# The builder always runs on the build host's platform and cross-compiles (no QEMU-emulated rustc);
# the runtime is distroless (glibc, CA certificates, no shell), non-root UID 65532 (the agent's
# DaemonSet grants read access to /var/log/pods, e.g. via supplementalGroups or runAsUser).
# scripts/images.sh builds this same file with podman, passing locally made RUST_IMAGE and
# RUNTIME_IMAGE and CARGO_PROFILE=image-local.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG BUILDARCH
ARG PACKAGE
# `release` for published images; scripts/images.sh passes `image-local` (Cargo.toml) to skip fat LTO.
ARG CARGO_PROFILE=release
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Cross toolchain only when the target differs from the build host (amd64 host -> arm64 target).
RUN [ -n "${PACKAGE}" ] || { echo "set --build-arg PACKAGE (outrigger-proxy, outrigger-agent or outrigger-injector)" >&2; exit 1; } \
 && case "${TARGETARCH}" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && echo "${target}" > /rust-target \
 && if [ "${TARGETARCH}" != "${BUILDARCH}" ]; then \
      [ "${TARGETARCH}" = arm64 ] || { echo "cross builds only from amd64 to arm64" >&2; exit 1; }; \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu=4:12.2.0-3 libc6-dev-arm64-cross=2.36-8cross1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && rustup target add "${target}"
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src
# Only the workspace (all members must exist for cargo to resolve it); never .tools/, target/ or .git.
COPY Cargo.toml Cargo.lock ./
COPY proxy/ proxy/
COPY agent/ agent/
COPY crates/ crates/
COPY injector/ injector/
# Cache mounts keep the registry and per-arch target dirs between builds (BuildKit, podman); the
# three daemons share one target dir, so their common dependencies compile once.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=outrigger-target-${TARGETARCH} \
    target="$(cat /rust-target)" \
 && case "${CARGO_PROFILE}" in dev) profile_dir=debug ;; *) profile_dir="${CARGO_PROFILE}" ;; esac \
 && cargo build --profile "${CARGO_PROFILE}" --locked --target "${target}" -p "${PACKAGE}" --bin "${PACKAGE}" \
 && install -D -m 0755 "target/${target}/${profile_dir}/${PACKAGE}" "/out/usr/local/bin/${PACKAGE}" \
 && ln -s "${PACKAGE}" /out/usr/local/bin/outrigger-daemon

FROM ${RUNTIME_IMAGE}
ARG PACKAGE
ARG DESCRIPTION
# Space-separated: the daemon's listening ports (see IMAGES in .github/scripts/release_plan.py).
ARG PORTS
ARG VERSION=0.0.0-dev
LABEL org.opencontainers.image.title="${PACKAGE}" \
      org.opencontainers.image.description="${DESCRIPTION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/outrigger-mesh/outrigger"
# /usr/local/bin/PACKAGE as before, plus the symlink outrigger-daemon -> PACKAGE: ENTRYPOINT
# cannot expand a build arg, so it names that one fixed path whichever daemon this is.
COPY --from=build /out/ /
USER 65532:65532
EXPOSE ${PORTS}
# SIGTERM is every daemon's graceful stop (drain / flush and checkpoint, then exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/outrigger-daemon"]
