#!/usr/bin/env bash
# Fan-in/fan-out throughput and latency, and idle-connection memory:
# Mosquitto (a private instance) vs bare rumqttd vs skyport-broker.
# Writes bench/results/fanout.json and bench/results/fanout.md.
# Extra arguments go to the benchmark, e.g. `bench/fanout.sh --rounds 1 --idle-connections 1000`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# The load before our own build, for the results' header (builds and CI share the machine).
SKYPORT_BENCH_LOAD_BEFORE_BUILD="$(cut -d' ' -f1-3 /proc/loadavg)"
export SKYPORT_BENCH_LOAD_BEFORE_BUILD
cargo build --release -p skyport-broker --bins --examples
echo "open files limit: $(ulimit -n); load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "$target/release/examples/fanout" \
    --broker-bin "$target/release/skyport-broker" \
    --out-dir "$root/bench/results" \
    "$@"
