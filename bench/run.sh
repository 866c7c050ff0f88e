#!/usr/bin/env bash
# Throughput benchmark: Mosquitto (127.0.0.1:1883) vs bare rumqttd vs skyport-broker.
# Writes bench/results/throughput.json and bench/results/throughput.md.
# Extra arguments go to the benchmark, e.g. `bench/run.sh --rounds 1 --qos0-messages 10000`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p skyport-broker --bins --examples
exec "$target/release/examples/throughput" \
    --broker-bin "$target/release/skyport-broker" \
    --out-dir "$root/bench/results" \
    "$@"
