# The Skyport control plane image: the `skyport` binary on a slim Debian runtime, run as
# an unprivileged user. Build from the repository root (see docker/README.md):
#   docker build -f docker/skyport.Dockerfile -t skyport/skyport:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate downloads and the target dir between builds; the binary
# is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p skyport-control-plane --bin skyport \
    && install -m 0755 target/release/skyport /usr/local/bin/skyport

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 skyport \
    && useradd --system --uid 10001 --gid skyport --home-dir /var/lib/skyport --no-create-home --shell /usr/sbin/nologin skyport \
    && install -d -o skyport -g skyport -m 0750 /var/lib/skyport
COPY --from=build /usr/local/bin/skyport /usr/local/bin/skyport
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/skyport
ENV SKYPORT_DATA_DIR=/var/lib/skyport \
    SKYPORT_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/skyport"]
