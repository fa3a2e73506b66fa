#!/usr/bin/env bash
# Builds the optional C accelerator wsclient._speedups in place, so that the in-tree test run
# (python3 -m pytest from the checkout) exercises the C masking path as well as the pure one.
# WSCLIENT_SPEEDUPS=1 makes a failed build an error here: CI must have the C path.
# Idempotent: rebuilding an up-to-date extension is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev
fi
WSCLIENT_SPEEDUPS=1 "$PY" setup.py -q build_ext --inplace
"$PY" -c "import wsclient._speedups"
