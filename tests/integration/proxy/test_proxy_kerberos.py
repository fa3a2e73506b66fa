"""Negotiate (Kerberos) through a real squid (``negotiate_kerberos_auth``) against a real MIT
KDC on loopback (``krb5realm.py``), with the user's ticket cache found through ``KRB5CCNAME``.

The proxy URL carries no credentials: the ticket is the credential. squid's access log names
the Kerberos principal that authenticated.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from krb5realm import REALM, USER

import wsclient
from wsclient import ProxyAuthenticationRequired


@pytest.fixture
def kerberos_env(krb5_realm: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point this process's Kerberos library at the test realm and alice's ticket."""
    for name, value in krb5_realm.env().items():
        monkeypatch.setenv(name, value)
    return krb5_realm


def _path(tag: str) -> str:
    return f"/krb-{tag}-{time.monotonic_ns()}"


def _proxy_url(squid: Any, host: str = "localhost") -> str:
    return f"http://{host}:{squid.port}"


def test_ws_through_squid_with_kerberos(kerberos_env: Any, squid_kerberos: Any, ws_target: Any) -> None:
    path = _path("ws")
    with wsclient.connect(ws_target.url(path), proxies={"ws": _proxy_url(squid_kerberos)}, timeout=10) as ws:
        ws.send("kerberos")
        assert ws.recv(timeout=10) == "kerberos"
        assert tuple(ws.remote_address[:2]) == squid_kerberos.address
    line = squid_kerberos.wait_log(f"CONNECT 127.0.0.1:{ws_target.port} user={USER}@{REALM}")
    assert "TCP_TUNNEL/200" in line
    assert "proxy-authorization" not in ws_target.find(path).headers


def test_wss_through_squid_with_kerberos(
    kerberos_env: Any, squid_kerberos: Any, wss_target: Any, ca_path: str
) -> None:
    path = _path("wss")
    with wsclient.connect(
        wss_target.url(path), proxies={"wss": _proxy_url(squid_kerberos)}, verify=ca_path, timeout=10
    ) as ws:
        ws.send(b"\x00kerberos")
        assert ws.recv(timeout=10) == b"\x00kerberos"
        assert tuple(ws.remote_address[:2]) == squid_kerberos.address
    line = squid_kerberos.wait_log(f"CONNECT 127.0.0.1:{wss_target.port} user={USER}@{REALM}")
    assert "TCP_TUNNEL/200" in line


def test_no_ticket_says_kinit(
    kerberos_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, squid_kerberos: Any, ws_target: Any
) -> None:
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'empty-ccache'}")
    path = _path("no-ticket")
    with pytest.raises(ProxyAuthenticationRequired) as info:
        wsclient.connect(ws_target.url(path), proxies={"ws": _proxy_url(squid_kerberos)}, timeout=10)
    message = str(info.value)
    assert "407" in message
    assert "Kerberos for HTTP@localhost failed" in message
    assert "kinit" in message and "KRB5CCNAME" in message
    assert info.value.response is not None and info.value.response.status == 407
    assert not any(seen.path == path for seen in ws_target.seen)


def test_wrong_service_principal_is_refused(kerberos_env: Any, squid_kerberos: Any, ws_target: Any) -> None:
    # Named by its address, the proxy is HTTP/127.0.0.1: the KDC issues that ticket, but the
    # proxy's keytab only holds HTTP/localhost, so squid cannot accept it.
    path = _path("wrong-principal")
    with pytest.raises(ProxyAuthenticationRequired) as info:
        wsclient.connect(ws_target.url(path), proxies={"ws": _proxy_url(squid_kerberos, "127.0.0.1")}, timeout=10)
    assert "Negotiate credentials refused" in str(info.value)
    assert not any(seen.path == path for seen in ws_target.seen)


def test_missing_bindings_name_the_extra(
    kerberos_env: Any, monkeypatch: pytest.MonkeyPatch, squid_kerberos: Any, ws_target: Any
) -> None:
    monkeypatch.setitem(sys.modules, "gssapi", None)  # as if pyspnego[kerberos] were not installed
    with pytest.raises(ProxyAuthenticationRequired) as info:
        wsclient.connect(ws_target.url(_path("no-bindings")), proxies={"ws": _proxy_url(squid_kerberos)}, timeout=10)
    message = str(info.value)
    assert "pip install 'python-wsclient[kerberos]'" in message
    assert "give credentials in the proxy URL" not in message  # squid offers Negotiate only


def test_the_messages_without_a_proxy_or_a_realm(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsclient.proxy import auth as auth_mod

    monkeypatch.setattr(auth_mod, "kerberos_available", lambda: False)
    only, why = auth_mod.choose_authenticator(
        [auth_mod.Challenge("negotiate")], username=None, password=None, proxy_host="p", authority="t:1"
    )
    assert only is None
    assert "pip install 'python-wsclient[kerberos]'" in why and "give credentials" not in why
    both, why = auth_mod.choose_authenticator(
        [auth_mod.Challenge("negotiate"), auth_mod.Challenge("basic", None, {"realm": "r"})],
        username=None,
        password=None,
        proxy_host="p",
        authority="t:1",
    )
    assert both is None
    assert "wsclient[kerberos]" in why and why.endswith("or give credentials in the proxy URL")


def test_a_kdc_that_never_answers_is_bounded_by_the_timeout(
    kerberos_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, squid_kerberos: Any, ws_target: Any
) -> None:
    """The ticket for the proxy comes from the KDC during the Negotiate step (a network
    exchange with krb5's own, longer timeouts): a KDC that accepts and never answers must
    not hold the opening past its timeout."""
    ccache = tmp_path / "tgt-only"
    kerberos_env.kinit(ccache)  # a ticket-granting ticket, no ticket for the proxy yet
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    conf = tmp_path / "krb5.conf"
    conf.write_text(
        kerberos_env.krb5_conf.read_text().replace(f"127.0.0.1:{kerberos_env.port}", f"127.0.0.1:{silent.getsockname()[1]}")
    )
    monkeypatch.setenv("KRB5_CONFIG", str(conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ccache}")
    started = time.monotonic()
    try:
        with pytest.raises(wsclient.ConnectTimeout, match="Kerberos KDC"):
            wsclient.connect(ws_target.url(_path("silent-kdc")), proxies={"ws": _proxy_url(squid_kerberos)}, timeout=1.5)
        assert time.monotonic() - started < 1.5 + 1.5
    finally:
        silent.close()  # the abandoned Kerberos step then fails and its thread ends
        # How soon krb5 notices is krb5's business (at once here, seconds on a loaded
        # machine): wait for the abandoned step within krb5's own retry limits, and fail
        # if it never ends.
        for thread in [t for t in threading.enumerate() if t.name == "wsclient-kerberos"]:
            thread.join(20.0)
            assert not thread.is_alive(), "the abandoned Kerberos step never ended"
