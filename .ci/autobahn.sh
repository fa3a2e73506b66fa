#!/usr/bin/env bash
# Install the Autobahn|TestSuite (wstest) into a Python 2.7 virtualenv.
#
# Idempotent: a venv that already holds a working autobahntestsuite of the
# pinned version is reused as it is; a missing, partial or broken one is
# rebuilt from PyPI. Safe to run on a fresh CI machine as root.
#
# Usage:  bash .ci/autobahn.sh            # prints the path of wstest on its last line
# Env:    AUTOBAHN_VENV      where the venv lives (default /opt/autobahn-venv)
#         AUTOBAHN_PYTHON27  a Python 2.7 interpreter (default: pyenv's 2.7.18,
#                            then python2.7 on PATH)
#
# compliance/run.py finds wstest at $AUTOBAHN_VENV/bin/wstest (or $AUTOBAHN_WSTEST).
set -euo pipefail

AUTOBAHN_VERSION="25.10.1"
VENV="${AUTOBAHN_VENV:-/opt/autobahn-venv}"
MARKER="$VENV/.wsclient-autobahn-$AUTOBAHN_VERSION"

log() { echo "[autobahn.sh] $*" >&2; }

venv_works() {
    [ -f "$MARKER" ] && [ -x "$VENV/bin/wstest" ] || return 1
    "$VENV/bin/wstest" -a 2>/dev/null | grep -q "AutobahnTestSuite $AUTOBAHN_VERSION" || return 1
    # The fuzzing server's own imports (Twisted reactor, autobahn, wsaccel, report templates).
    "$VENV/bin/python" -c "import autobahntestsuite.fuzzing, twisted.internet.reactor, jinja2" \
        >/dev/null 2>&1
}

if venv_works; then
    log "reusing $VENV (autobahntestsuite $AUTOBAHN_VERSION)"
    echo "$VENV/bin/wstest"
    exit 0
fi

# --- find a Python 2.7 --------------------------------------------------------
PY27="${AUTOBAHN_PYTHON27:-}"
if [ -z "$PY27" ] && command -v pyenv >/dev/null 2>&1; then
    candidate="$(pyenv root)/versions/2.7.18/bin/python2.7"
    [ -x "$candidate" ] && PY27="$candidate"
fi
if [ -z "$PY27" ] && [ -x /root/.pyenv/versions/2.7.18/bin/python2.7 ]; then
    PY27=/root/.pyenv/versions/2.7.18/bin/python2.7
fi
if [ -z "$PY27" ] && command -v python2.7 >/dev/null 2>&1; then
    PY27="$(command -v python2.7)"
fi
if [ -z "$PY27" ] || ! "$PY27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
    log "no Python 2.7 interpreter found (set AUTOBAHN_PYTHON27); the suite needs 2.7"
    exit 1
fi
log "using $PY27"

# --- virtualenv for Python 2 --------------------------------------------------
# virtualenv 20.15.1 is the last release that runs on Python 2.7 (and pip on 2.7
# picks it by python_requires); a current virtualenv on Python 3 can no longer
# create 2.7 environments.
if ! "$PY27" -m virtualenv --version >/dev/null 2>&1; then
    log "installing virtualenv 20.15.1 for $PY27"
    "$PY27" -m pip install --disable-pip-version-check -q "virtualenv==20.15.1"
fi

# --- build the venv from scratch (virtualenvs are not relocatable, so in place) ---
log "building $VENV"
rm -rf "$VENV"
"$PY27" -m virtualenv -q -p "$PY27" "$VENV"

# Pins: autobahntestsuite 25.10.1 pins its direct requirements exactly; these
# pin the transitive ones too (the set that was installed and verified with
# `wstest -m fuzzingserver` on 2.7.18), so that a new upload to PyPI cannot
# break the suite. Everything here still publishes Python 2.7 wheels/sdists.
CONSTRAINTS="$VENV/autobahn-constraints.txt"
cat >"$CONSTRAINTS" <<'EOF'
attrs==21.4.0
autobahn==0.10.9
autobahntestsuite==25.10.1
Automat==22.10.0
cffi==1.15.1
constantly==15.1.0
cryptography==3.3.2
enum34==1.1.10
hyperlink==21.0.0
idna==2.10
incremental==16.10.1
ipaddress==1.0.23
Jinja2==2.11.3
klein==17.10.0
linecache2==1.0.0
MarkupSafe==1.1.1
pyasn1==0.5.1
pyasn1-modules==0.3.0
pycparser==2.21
PyHamcrest==1.10.1
pyOpenSSL==19.1.0
service-identity==18.1.0
six==1.16.0
traceback2==1.4.0
Twisted==19.10.0
txaio==2.1.0
typing==3.10.0.0
ujson==2.0.3
unittest2==1.1.0
Werkzeug==1.0.1
wsaccel==0.6.6
zope.interface==4.6.0
setuptools==44.0.0
argparse==1.4.0
EOF

LOG="$VENV/pip-install.log"
log "pip install autobahntestsuite==$AUTOBAHN_VERSION (compiles wsaccel/ujson; about a minute)"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check \
        -c "$CONSTRAINTS" "autobahntestsuite==$AUTOBAHN_VERSION" >"$LOG" 2>&1; then
    # pip on 2.7 warns about every missing local index folder; show the real error.
    grep -v "is ignored: it is neither a file nor a directory" "$LOG" | tail -40 >&2
    log "pip install failed (full log: $LOG)"
    exit 1
fi

touch "$MARKER"
if ! venv_works; then
    rm -f "$MARKER"
    log "installed, but wstest does not work:"
    "$VENV/bin/wstest" -a >&2 || true
    exit 1
fi
log "ready: $("$VENV/bin/wstest" -a 2>/dev/null | tr '\n' ' ')"
echo "$VENV/bin/wstest"
