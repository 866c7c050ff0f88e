#!/usr/bin/env bash
# Throughput with third-party clients (mosquitto_pub -> mosquitto_sub): Mosquitto
# (127.0.0.1:1883) vs bare rumqttd vs skyport-broker, and the durable-session cost.
# Writes bench/results/clients.{json,md}. Extra arguments go to bench/clients.py,
# e.g. `bench/clients.sh --rounds 1`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p skyport-broker --bins --examples
exec python3 "$root/bench/clients.py" \
    --broker-bin "$target/release/skyport-broker" \
    --rumqttd-example "$target/release/examples/throughput" \
    --out-dir "$root/bench/results" \
    "$@"
