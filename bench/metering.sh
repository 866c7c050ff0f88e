#!/usr/bin/env bash
# Metering ingest benchmark: the control plane's POST /internal/v1/metering/reports with
# 1,000 deployments, on SQLite and PostgreSQL (needs PostgreSQL on 127.0.0.1:5432 with
# trust auth, as the tests do; SKYPORT_TEST_POSTGRES overrides). Writes
# bench/results/metering-ingest.{json,md}. Extra arguments go to the benchmark, e.g.
#   bash bench/metering.sh --rounds 12 --concurrency 64 --backend sqlite
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --bin skyport --bin skyport-broker
cargo run --release --locked -p skyport-tests --example metering_ingest -- "$@"
