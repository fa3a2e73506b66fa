#!/usr/bin/env bash
# Installs what the worker recipes and trust tests need (issue 9):
#   - PyPI: django, flask, celery, gevent (tests/integration/test_workers.py runs each recipe
#     of docs/workers.md), truststore (verify="system", tests/integration/test_trust.py);
#   - Debian: openssl (a hashed CA directory for SSL_CERT_DIR) and ca-certificates
#     (update-ca-certificates: the test that puts a CA in the OS store, then removes it).
# Idempotent; run as root on a fresh Debian machine (CI) or by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

missing=()
for pkg in django flask celery gevent truststore; do
    "$PY" -c "import $pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    "$PY" -m pip install --quiet "${missing[@]}"
fi

if ! command -v openssl >/dev/null 2>&1 || ! command -v update-ca-certificates >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl ca-certificates
fi

"$PY" -c "import django, flask, celery, gevent, truststore; print('install-workers: django', django.__version__, 'celery', celery.__version__, 'gevent', gevent.__version__, 'truststore', truststore.__version__)"
