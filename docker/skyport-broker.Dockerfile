# The Skyport broker node image: the `skyport-broker` binary on a slim Debian runtime, run
# as an unprivileged user. The control plane's kubernetes driver runs it in each
# deployment's StatefulSet with --config pointing at the mounted configuration. Build from
# the repository root (see docker/README.md):
#   docker build -f docker/skyport-broker.Dockerfile -t skyport/skyport-broker:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p skyport-broker --bin skyport-broker \
    && install -m 0755 target/release/skyport-broker /usr/local/bin/skyport-broker

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 skyport \
    && useradd --system --uid 10001 --gid skyport --home-dir /var/lib/skyport --no-create-home --shell /usr/sbin/nologin skyport \
    && install -d -o skyport -g skyport -m 0750 /var/lib/skyport
COPY --from=build /usr/local/bin/skyport-broker /usr/local/bin/skyport-broker
USER 10001:10001
WORKDIR /var/lib/skyport
# MQTT over TCP, TLS, WebSocket and secure WebSocket (all unprivileged ports).
EXPOSE 1883 8883 8083 8084
ENTRYPOINT ["/usr/local/bin/skyport-broker"]
