#!/usr/bin/env bash
# Rule engine benchmark: matched msgs/s into republish, webhook, Redis and PostgreSQL, and
# the MQTT pub/sub cost of 1 and 10 active rules vs none (bench/rules.py says how).
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database test, trust
# auth) as the tests do. Writes bench/results/rules.{json,md}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --bin skyport-broker
python3 bench/rules.py "$@"
