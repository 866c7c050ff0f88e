#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this kind: builds the binaries the
# end-to-end tests start, prepares the Python tools (paho-mqtt, schemathesis) in
# target/pytools, then runs every test of the workspace with nextest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v mosquitto_sub >/dev/null 2>&1; then
  echo "installing mosquitto-clients (the tests use real mosquitto_pub/mosquitto_sub)"
  apt-get install -y -qq mosquitto-clients >/dev/null || { apt-get update -qq && apt-get install -y -qq mosquitto-clients >/dev/null; }
fi
for tool in jq curl; do
  command -v $tool >/dev/null 2>&1 || apt-get install -y -qq $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
if ! command -v psql >/dev/null 2>&1; then
  apt-get install -y -qq postgresql-client >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null; }
fi
bash tests/setup-python.sh
bash tests/setup-browser.sh
cargo build --workspace --bins --locked
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
