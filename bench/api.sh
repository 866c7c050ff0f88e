#!/usr/bin/env bash
# Control API benchmark: p50/p99 of reads and of writes that wait for a broker at a fixed
# rate (500 requests/s by default) on SQLite and PostgreSQL, and the time from
# POST /deployments to a successful MQTT CONNECT (bench/api.py says how). Needs
# PostgreSQL on 127.0.0.1:5432 (trust auth, as the tests) and mosquitto_pub.
# Writes bench/results/api.{json,md}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked --bin skyport --bin skyport-broker
exec python3 bench/api.py --bin-dir "$target/release" "$@"
