#!/usr/bin/env bash
# Prepares the web console's browser tests: Debian's Chromium (and ChromeDriver) from
# apt, and playwright-core from tests/browser/package-lock.json (no browser download:
# the tests drive /usr/bin/chromium). Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing Debian's chromium and chromium-driver (the console's browser tests drive them)"
  apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
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
