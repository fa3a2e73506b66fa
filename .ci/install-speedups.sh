#!/usr/bin/env bash
# Builds the optional C accelerator wsclient._speedups in place, so that the in-tree test run
# (python3 -m pytest from the checkout) exercises the C masking path as well as the pure one.
# WSCLIENT_SPEEDUPS=1 makes a failed build an error here: CI must have the C path.
# Idempotent: rebuilding an up-to-date extension is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
need=()
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    need+=(gcc libc6-dev)
fi
# Debian's own python3 keeps its headers in python3-dev (a pyenv or venv build has them).
if ! "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    need+=(python3-dev)
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
# Python 3.12+ venvs come without setuptools; setup.py needs it.
"$PY" -c "import setuptools" >/dev/null 2>&1 || "$PY" -m pip install --quiet setuptools
WSCLIENT_SPEEDUPS=1 "$PY" setup.py -q build_ext --inplace
"$PY" -c "import wsclient._speedups"
