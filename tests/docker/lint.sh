#!/usr/bin/env bash
# Lints docker/Dockerfile.* with dockerfilelint (npm). Installs it into a
# temporary folder when absent; fails on any finding.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
LINT=$(command -v dockerfilelint || true)
if [[ -z "$LINT" ]]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  npm install --silent --no-audit --no-fund --prefix "$TMP" dockerfilelint@1.8.0 >/dev/null
  LINT="$TMP/node_modules/.bin/dockerfilelint"
fi
for f in docker/Dockerfile.*; do
  echo "dockerfilelint $f"
  "$LINT" "$f"
done
