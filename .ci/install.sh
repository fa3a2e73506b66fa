#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (as root):
# the package with its test extras, Node's ws for the Node echo server, and the proxies.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet -e '.[test]'
bash .ci/install-test-peers.sh
bash .ci/install-proxies.sh
bash .ci/install-speedups.sh
