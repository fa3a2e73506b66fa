#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (as root, for apt):
# a virtualenv (.venv, or $PYTHON's when PYTHON is set) holding the package in editable mode
# with its test extras, then Node's ws for the Node echo server, and the proxies.
#
# Why a venv: Debian's python3 refuses `pip install` outside one (PEP 668), and a venv keeps
# CI from changing the machine's Python. Afterwards: .venv/bin/python -m pytest
#
# Env: PYTHON        an existing interpreter to install into (e.g. another venv's python);
#                    unset: create/reuse $WSCLIENT_VENV (default: .venv in the repository).
# The topic scripts below are called with PYTHON pointing at that interpreter and its bin
# folder first on PATH, so that their `python3` is the venv's too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
    VENV="${WSCLIENT_VENV:-$PWD/.venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            # Debian ships the venv module (with ensurepip) separately.
            echo "install.sh: apt-get install python3-venv"
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        fi
        python3 -m venv "$VENV"
    fi
    PYTHON="$VENV/bin/python"
fi
export PYTHON
PATH="$(dirname "$PYTHON"):$PATH"
export PATH

"$PYTHON" -m pip install --quiet --upgrade pip
# editable_mode=compat: a plain path entry in a .pth file, which mypy (and other static
# tools) can follow; setuptools' default editable finder hook is invisible to them.
"$PYTHON" -m pip install --quiet --config-settings editable_mode=compat -e '.[test]'
bash .ci/install-test-peers.sh
bash .ci/install-proxies.sh
bash .ci/install-workers.sh
bash .ci/install-kerberos.sh
bash .ci/install-speedups.sh
