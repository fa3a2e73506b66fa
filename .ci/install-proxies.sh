#!/usr/bin/env bash
# Install what the proxy tests (tests/integration/proxy/) need, on a fresh Debian machine as root:
#   - squid (with its auth helpers basic_ncsa_auth, digest_file_auth, ntlm_fake_auth),
#     apache2-utils (htpasswd), dante-server (danted);
#   - pproxy (PyPI), and the extras python-wsclient[socks] (PySocks) and python-wsclient[ntlm] (pyspnego);
#   - the system user that dante's SOCKS5 username authentication checks.
# The tests start their own proxy processes on loopback; this script starts none (and stops the
# ones the Debian packages may have started).
#
# Idempotent. Usage: bash .ci/install-proxies.sh
set -euo pipefail

log() { echo "[install-proxies.sh] $*" >&2; }

PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi

need_apt=0
for tool in /usr/sbin/squid /usr/bin/htpasswd /usr/sbin/danted /usr/lib/squid/ntlm_fake_auth; do
    [ -x "$tool" ] || need_apt=1
done
if [ "$need_apt" = "1" ]; then
    log "apt-get install squid apache2-utils dante-server"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null || true
    $SUDO apt-get install -y -q squid apache2-utils dante-server >/dev/null
fi

# The packages' own services are not used (and would hold default ports).
for service in squid danted; do
    if command -v service >/dev/null 2>&1; then
        $SUDO service "$service" stop >/dev/null 2>&1 || true
    fi
done

log "pip install pproxy PySocks pyspnego"
"$PYTHON" -m pip install -q "pproxy>=2.7" "PySocks>=1.7.1" "pyspnego>=0.10" "websockets>=13" "trustme>=1.1"

# dante checks SOCKS5 user names and passwords against the system's accounts.
DANTE_USER="wsproxytest"
DANTE_PASSWORD="Dante-Pass-1"
if ! id -u "$DANTE_USER" >/dev/null 2>&1; then
    log "creating the system user $DANTE_USER"
    $SUDO useradd --no-create-home --shell /usr/sbin/nologin "$DANTE_USER"
fi
echo "$DANTE_USER:$DANTE_PASSWORD" | $SUDO chpasswd

log "done: $(/usr/sbin/squid -v | head -1); $(/usr/sbin/danted -v 2>&1 | head -1); pproxy $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("pproxy"))')"
