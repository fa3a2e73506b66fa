#!/usr/bin/env bash
# Install what the Kerberos and PAC proxy tests need, on a fresh Debian machine as root:
#   - MIT Kerberos: krb5-kdc, krb5-admin-server (kadmin.local, kdb5_util), krb5-user (kinit,
#     klist), libkrb5-dev (krb5-config, needed to compile the Python bindings);
#   - the extra python-wsclient[kerberos]: pyspnego[kerberos], which brings gssapi and krb5. Both are
#     compiled from source (~4 minutes), so their wheels are built once into WHEEL_CACHE and a
#     second run installs from there in seconds;
#   - the extra python-wsclient[pac]: pypac (its dukpy JavaScript engine is also a compiled wheel).
# The tests build their own loopback realm in a temp dir (tests/kerberos/realm.py); this script
# starts no KDC (and stops the ones the Debian packages may have started).
#
# Idempotent. Usage: bash .ci/install-kerberos.sh
set -euo pipefail

log() { echo "[install-kerberos.sh] $*" >&2; }

PYTHON="${PYTHON:-python3}"
WHEEL_CACHE="${WHEEL_CACHE:-/var/cache/wsclient-wheels}"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi

need_apt=0
for tool in /usr/sbin/krb5kdc /usr/sbin/kadmin.local /usr/sbin/kdb5_util /usr/bin/kinit \
            /usr/bin/krb5-config /usr/lib/squid/negotiate_kerberos_auth; do
    [ -x "$tool" ] || need_apt=1
done
if [ "$need_apt" = "1" ]; then
    log "apt-get install krb5-kdc krb5-admin-server krb5-user libkrb5-dev squid"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null || true
    $SUDO apt-get install -y -q krb5-kdc krb5-admin-server krb5-user libkrb5-dev squid >/dev/null
fi

# The packages' own services are not used (the tests start a KDC on a free loopback port).
for service in krb5-kdc krb5-admin-server; do
    if command -v service >/dev/null 2>&1; then
        $SUDO service "$service" stop >/dev/null 2>&1 || true
    fi
done

if "$PYTHON" -c "import gssapi, krb5, spnego, pypac, dukpy" >/dev/null 2>&1; then
    log "gssapi, krb5, pyspnego, pypac and dukpy already importable"
else
    $SUDO mkdir -p "$WHEEL_CACHE"
    log "pip wheel pyspnego[kerberos] pypac into $WHEEL_CACHE (compiles gssapi and krb5 the first time)"
    "$PYTHON" -m pip wheel -q --wheel-dir "$WHEEL_CACHE" --find-links "$WHEEL_CACHE" \
        "pyspnego[kerberos]>=0.10" "pypac>=0.16"
    log "pip install pyspnego[kerberos] pypac from $WHEEL_CACHE"
    "$PYTHON" -m pip install -q --find-links "$WHEEL_CACHE" \
        "pyspnego[kerberos]>=0.10" "pypac>=0.16"
fi

log "done: krb5-kdc $(dpkg-query -W -f='${Version}' krb5-kdc 2>/dev/null || echo "?"); $("$PYTHON" -c 'import importlib.metadata as m; print("gssapi", m.version("gssapi"), "krb5", m.version("krb5"), "pypac", m.version("pypac"))')"
