"""``wsclient.connect`` through every kind of proxy to a real WebSocket server.

Each test checks the echo, that the server's peer was the proxy (not this process), that
``ws.remote_address`` is the proxy's address, and that no proxy credential reached the
server.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from proxypeers import (
    BASIC_PASSWORD,
    DANTE_PASSWORD,
    DANTE_USER,
    DIGEST_PASSWORD,
    NTLM_DOMAIN,
    NTLM_PASSWORD,
    PPROXY_PASSWORD,
    USER,
)

import wsclient
from wsclient import ConnectTimeout, ProxyAuthenticationRequired, ProxyError

SECRETS = (BASIC_PASSWORD, DIGEST_PASSWORD, PPROXY_PASSWORD, DANTE_PASSWORD, NTLM_PASSWORD)


def _path(tag: str) -> str:
    return f"/e2e-{tag}-{time.monotonic_ns()}"


def _check(ws: Any, target: Any, path: str, proxy_address: tuple[str, int]) -> None:
    ws.send("hello through the proxy")
    assert ws.recv(timeout=10) == "hello through the proxy"
    ws.send(b"\x00\x01binary")
    assert ws.recv(timeout=10) == b"\x00\x01binary"
    assert tuple(ws.remote_address[:2]) == proxy_address
    seen = target.find(path)
    # The server's peer is the proxy's outgoing socket, not this process's socket (both are
    # on loopback, so the ports tell them apart).
    local = ws._sock.getsockname()
    assert (seen.peer[0], seen.peer[1]) != (local[0], local[1])
    headers = " ".join(f"{k}: {v}" for k, v in seen.headers.items())
    assert "proxy-authorization" not in seen.headers
    for secret in SECRETS:
        assert secret not in headers and secret not in seen.path


PROXIES = [
    "squid-open",
    "squid-basic",
    "squid-digest",
    "squid-ntlm",
    "pproxy-http",
    "pproxy-socks4",
    "pproxy-socks5",
    "pproxy-socks5h",
    "dante-socks5",
    "spnego-negotiate",
]


@pytest.fixture(params=PROXIES)
def any_proxy(request: pytest.FixtureRequest) -> tuple[str, tuple[str, int]]:
    """(proxy URL with credentials, the proxy's address)."""
    kind = request.param
    if kind.startswith("squid"):
        auth = kind.split("-")[1]
        squid = request.getfixturevalue(f"squid_{auth}")
        user = {"open": None, "basic": USER, "digest": USER, "ntlm": f"{NTLM_DOMAIN}\\{USER}"}[auth]
        password = {"open": None, "basic": BASIC_PASSWORD, "digest": DIGEST_PASSWORD, "ntlm": "x"}[auth]
        if auth == "ntlm":
            pytest.importorskip("spnego")
        return squid.url("http", user, password), squid.address
    if kind.startswith("pproxy"):
        pproxy = request.getfixturevalue("pproxy")
        scheme = kind.split("-")[1]
        if scheme in ("http", "socks5h"):
            url = pproxy.url_for("auth", scheme, USER, PPROXY_PASSWORD)
            return url, ("127.0.0.1", pproxy.ports["auth"])
        return pproxy.url_for("open", scheme), ("127.0.0.1", pproxy.ports["open"])
    if kind == "dante-socks5":
        dante = request.getfixturevalue("dante_auth")
        return dante.url("socks5", DANTE_USER, DANTE_PASSWORD), dante.address
    proxy = request.getfixturevalue("negotiate_proxy")
    return proxy.url(f"{NTLM_DOMAIN}\\{USER}", NTLM_PASSWORD), ("127.0.0.1", proxy.port)


def test_ws_through_proxy(any_proxy: tuple[str, tuple[str, int]], ws_target: Any) -> None:
    url, address = any_proxy
    path = _path("ws")
    with wsclient.connect(ws_target.url(path), proxies={"ws": url}, timeout=10) as ws:
        _check(ws, ws_target, path, address)


def test_wss_through_proxy(any_proxy: tuple[str, tuple[str, int]], wss_target: Any, ca_path: str) -> None:
    url, address = any_proxy
    path = _path("wss")
    with wsclient.connect(wss_target.url(path), proxies={"wss": url}, verify=ca_path, timeout=10) as ws:
        _check(ws, wss_target, path, address)


@pytest.mark.parametrize("kind", ["squid", "pproxy"])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_through_https_proxy(
    request: pytest.FixtureRequest, kind: str, scheme: str, proxy_tls: Any, ca_path: str
) -> None:
    """TLS to the proxy; for wss, TLS inside it (the proxy's CA given as proxy_verify)."""
    if kind == "squid":
        squid = request.getfixturevalue("squid_https")
        url, address = squid.url("https", USER, BASIC_PASSWORD), squid.address
    else:
        pproxy = request.getfixturevalue("pproxy")
        url, address = (
            pproxy.url_for("https", "https", USER, PPROXY_PASSWORD),
            ("127.0.0.1", pproxy.ports["https"]),
        )
    target = request.getfixturevalue(f"{scheme}_target")
    path = _path(f"https-{scheme}")
    with wsclient.connect(
        target.url(path),
        proxies={"all": url},
        verify=ca_path,
        request_options={"proxy_verify": proxy_tls.ca_path},
        timeout=10,
    ) as ws:
        _check(ws, target, path, address)
        # Messages both ways while another thread sends: the TLS-in-TLS locks at work.
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                for i in range(50):
                    ws.send(f"bg {i}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=sender)
        thread.start()
        got = [ws.recv(timeout=10) for _ in range(50)]
        thread.join(10)
        assert not errors and got == [f"bg {i}" for i in range(50)]


def test_request_options_proxy_and_headers(squid_open: Any, ws_target: Any) -> None:
    path = _path("request-options")
    marker = f"m{time.monotonic_ns()}"
    with wsclient.connect(
        ws_target.url(path),
        proxies={},
        timeout=10,
        request_options={"proxy": squid_open.url(), "proxy_headers": {"X-Wsclient-Test": marker}},
    ) as ws:
        _check(ws, ws_target, path, squid_open.address)
    squid_open.wait_log(f"xtest={marker}")
    assert "x-wsclient-test" not in ws_target.find(path).headers  # proxy headers stay at the proxy


def test_environment_proxy(monkeypatch: pytest.MonkeyPatch, squid_basic: Any, ws_target: Any) -> None:
    for name in ("ws_proxy", "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("WS_PROXY", squid_basic.url("http", USER, BASIC_PASSWORD))
    path = _path("env")
    with wsclient.connect(ws_target.url(path), timeout=10) as ws:
        _check(ws, ws_target, path, squid_basic.address)
    # NO_PROXY exempts the target: a direct connection.
    monkeypatch.setenv("NO_PROXY", "127.0.0.0/8")
    with wsclient.connect(ws_target.url(_path("env-direct")), timeout=10) as ws:
        assert ws.remote_address[1] == ws_target.port


def test_ipv6_target(squid_open: Any, ws_target_v6: Any) -> None:
    path = _path("v6")
    with wsclient.connect(ws_target_v6.url(path), proxies={"ws": squid_open.url()}, timeout=10) as ws:
        _check(ws, ws_target_v6, path, squid_open.address)
    squid_open.wait_log(f"CONNECT [::1]:{ws_target_v6.port}")


# --------------------------------------------------------------------------- refusals through connect()


def test_connect_407(squid_basic: Any, ws_target: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        wsclient.connect(
            ws_target.url(), proxies={"ws": squid_basic.url("http", USER, "Bad-Pw-1")}, timeout=10
        )
    assert info.value.response.status == 407
    assert "Bad-Pw-1" not in str(info.value) and "Bad-Pw-1" not in repr(info.value)


def test_connect_refused_by_proxy(squid_open: Any) -> None:
    with pytest.raises(ProxyError) as info:
        wsclient.connect("ws://denied.invalid/", proxies={"ws": squid_open.url()}, timeout=10)
    assert info.value.response.status == 403


def test_connect_unreachable_proxy(refused_port: int, ws_target: Any) -> None:
    with pytest.raises(ProxyError):
        wsclient.connect(
            ws_target.url(), proxies={"ws": f"http://u:Hidden-1@127.0.0.1:{refused_port}"}, timeout=10
        )


def test_connect_socks_auth_failure(dante_auth: Any, ws_target: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired):
        wsclient.connect(
            ws_target.url(), proxies={"ws": dante_auth.url("socks5", DANTE_USER, "nope")}, timeout=10
        )


def test_connect_timeout_covers_the_proxy(scripted_proxy: Any, ws_target: Any) -> None:
    def silent(proxy: Any, conn: Any) -> None:
        proxy.read_request(conn)
        conn.recv(1)

    proxy = scripted_proxy(silent)
    with pytest.raises(ConnectTimeout):
        wsclient.connect(ws_target.url(), proxies={"ws": proxy.url}, timeout=0.5)


def test_unsupported_proxy_scheme() -> None:
    with pytest.raises(wsclient.InvalidURL):
        wsclient.connect("ws://127.0.0.1:9/", proxies={"ws": "ftp://proxy:21"}, timeout=5)


def test_no_credentials_in_logs(
    caplog: pytest.LogCaptureFixture, squid_basic: Any, dante_auth: Any, ws_target: Any
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="wsclient")
    for proxy in (
        squid_basic.url("http", USER, BASIC_PASSWORD),
        dante_auth.url("socks5", DANTE_USER, DANTE_PASSWORD),
    ):
        with wsclient.connect(ws_target.url(_path("logs")), proxies={"ws": proxy}, timeout=10) as ws:
            ws.send("x")
            ws.recv(timeout=10)
    with pytest.raises(ProxyAuthenticationRequired):
        wsclient.connect(
            ws_target.url(), proxies={"ws": squid_basic.url("http", USER, "Bad-Pw-2")}, timeout=10
        )
    assert "through" in caplog.text or "CONNECT" in caplog.text  # something was logged
    for secret in (BASIC_PASSWORD, DANTE_PASSWORD, "Bad-Pw-2"):
        assert secret not in caplog.text
