#!/usr/bin/env bash
# External HTTP authentication benchmark: Security::authenticate decisions per second
# against a local auth service, decision cache on and off. Writes bench/results/auth.md.
# Extra arguments go to the benchmark, e.g.
#   bash bench/auth.sh --seconds 10 --concurrency 512 --users 1000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/results
cargo run --release --locked -p skyport-broker --example auth_bench -- "$@" > bench/results/auth.md
cat bench/results/auth.md
