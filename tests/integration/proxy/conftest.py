"""Fixtures of the proxy tests: real proxies and recording targets on loopback.

The proxies and targets themselves live in ``proxypeers.py`` (see its docstring).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that test modules can `import proxypeers` in any import mode
    sys.path.insert(0, str(HERE))

from proxypeers import (  # noqa: E402, F401
    dante_auth,
    dante_open,
    krb5_realm,
    negotiate_proxy,
    ntlm_proxy,
    options,
    pproxy,
    proxy_reaper,
    proxy_tls,
    scripted_proxy,
    scripted_socks,
    spnego_user_file,
    squid_all,
    squid_basic,
    squid_digest,
    squid_https,
    squid_kerberos,
    squid_ntlm,
    squid_open,
    tcp_target,
    ws_target,
    ws_target_v6,
    wss_target,
)


@pytest.fixture(autouse=True)
def _forget_remembered_proxy_schemes() -> None:
    """Each test starts without remembered proxy schemes (the process-wide memory of which
    scheme each proxy accepted), so that no test depends on which ran before it."""
    from wsclient.proxy.auth import forget_proxy_schemes

    forget_proxy_schemes()
