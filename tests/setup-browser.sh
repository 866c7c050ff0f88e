#!/usr/bin/env bash
# Prepares the web console's browser tests: Debian's Chromium (and ChromeDriver) from
# apt, and playwright-core from tests/browser/package-lock.json (no browser download:
# the tests drive /usr/bin/chromium). Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# certutil (libnss3-tools) makes the browser's NSS database trust a deployment's CA, as a
# user importing it would, for the console's online test over wss.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
  || ! command -v certutil >/dev/null 2>&1; then
  echo "installing Debian's chromium, chromium-driver and libnss3-tools (the console's browser tests use them)"
  apt-get install -y -qq chromium chromium-driver libnss3-tools >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver libnss3-tools >/dev/null; }
fi
dir="$root/tests/browser"
stamp="$dir/node_modules/.package-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
echo "$want" > "$stamp"
echo "browser test tools ready in $dir/node_modules"
