#!/usr/bin/env bash
# Creates (or refreshes) the project's Python tool virtualenv in target/pytools from
# tests/requirements.txt. Idempotent: does nothing when the requirements are unchanged.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${SKYPORT_PYTOOLS:-$root/target/pytools}"
req="$root/tests/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "python tools ready in $venv"
