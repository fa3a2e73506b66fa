#!/usr/bin/env bash
# Installs the peers of the integration tests (tests/integration):
#   - PyPI: websockets (echo server), trustme (test CA), pytest-httpserver (non-101 answers),
#     pytest-timeout;
#   - npm: Node's `ws` server, exactly as pinned by tests/node/package-lock.json.
# Node.js itself comes from Debian when the machine has none.
# Idempotent; run as root on a fresh Debian machine (CI) or by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet "websockets>=14" "trustme>=1.1" "pytest-httpserver>=1.0" pytest-timeout

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install-test-peers: node/npm missing, installing Debian's nodejs and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# `npm ci` installs the lock file's versions into tests/node/node_modules (not committed).
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

node -e "require('./tests/node/node_modules/ws'); console.log('install-test-peers: node ' + process.version + ', ws ' + require('./tests/node/node_modules/ws/package.json').version)"
