"""SOCKS4/4a/5/5h tunnels through pproxy and dante (PySocks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from proxypeers import DANTE_PASSWORD, DANTE_USER, PPROXY_PASSWORD, USER, Trickler, deadline, echo_roundtrip

import wsclient
from wsclient.exceptions import ConnectFailed, ConnectTimeout, ProxyAuthenticationRequired, ProxyError
from wsclient.proxy import ProxyURL, open_tunnel, parse_proxy_url


def socks(url: str, host: str, port: int, options: Any) -> Any:
    return open_tunnel(parse_proxy_url(url), host, port, deadline=deadline(), options=options())


@pytest.mark.parametrize("scheme", ["socks4", "socks5", "socks5h"])
def test_pproxy_open(pproxy: Any, tcp_target: Any, options: Any, scheme: str) -> None:
    stream = socks(pproxy.url_for("open", scheme), "localhost", tcp_target.port, options)
    try:
        assert type(stream) is socket.socket  # a plain socket, ready for ctx.wrap_socket
        assert stream.getpeername()[:2] == ("127.0.0.1", pproxy.ports["open"])
        payload = f"via {scheme}".encode()
        echo_roundtrip(stream, payload)
        local = stream.getsockname()
    finally:
        stream.close()
    seen = next(s for s in tcp_target.seen if bytes(s.data) == payload)
    assert seen.peer[1] != local[1]


@pytest.mark.parametrize(
    ("scheme", "forms"),
    [
        ("socks4", {"ipv4"}),
        ("socks4a", {"domain"}),
        ("socks5", {"ipv4", "ipv6"}),
        ("socks5h", {"domain"}),
    ],
)
def test_remote_dns_semantics(scripted_socks: Any, options: Any, scheme: str, forms: set[str]) -> None:
    """socks4a/socks5h send the name to the proxy; socks4/socks5 send an address."""
    before = len(scripted_socks.requests)
    stream = socks(scripted_socks.url(scheme), "localhost", 4242, options)
    try:
        echo_roundtrip(stream, b"hello")
    finally:
        stream.close()
    record = scripted_socks.requests[before]
    assert record["form"] in forms and record["port"] == 4242
    if record["form"] == "domain":
        assert record["host"] == "localhost"
    else:
        assert record["host"] in ("127.0.0.1", "::1")


def test_socks4a_sends_user_id_only(scripted_socks: Any, options: Any) -> None:
    before = len(scripted_socks.requests)
    stream = socks(scripted_socks.url("socks4a", "bob", "Unsent-Pw"), "example.invalid", 80, options)
    stream.close()
    assert scripted_socks.requests[before]["userid"] == "bob"
    assert "Unsent-Pw" not in str(scripted_socks.requests[before])


def test_socks5_credentials_percent_decoded(scripted_socks: Any, options: Any) -> None:
    before = len(scripted_socks.requests)
    stream = socks(scripted_socks.url("socks5h", "CORP%5Cbob", "p%40ss%3Aw"), "example.invalid", 80, options)
    stream.close()
    record = scripted_socks.requests[before]
    assert (record["username"], record["password"]) == ("CORP\\bob", "p@ss:w")


def test_pproxy_socks5_auth(pproxy: Any, tcp_target: Any, options: Any) -> None:
    stream = socks(
        pproxy.url_for("auth", "socks5h", USER, PPROXY_PASSWORD), "127.0.0.1", tcp_target.port, options
    )
    try:
        echo_roundtrip(stream, b"socks5 with a password")
    finally:
        stream.close()


def test_pproxy_socks4_user_id(pproxy: Any, tcp_target: Any, options: Any) -> None:
    stream = socks(pproxy.url_for("socks4_auth", "socks4", USER), "127.0.0.1", tcp_target.port, options)
    try:
        echo_roundtrip(stream, b"socks4 user id")
    finally:
        stream.close()


def test_pproxy_socks5_wrong_password(pproxy: Any, tcp_target: Any, options: Any) -> None:
    # pproxy drops the connection instead of answering the sub-negotiation: a ProxyError.
    with pytest.raises(ProxyError) as info:
        socks(pproxy.url_for("auth", "socks5", USER, "Wr0ng"), "127.0.0.1", tcp_target.port, options)
    assert "Wr0ng" not in str(info.value)


def test_pproxy_socks5_needs_credentials(pproxy: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyError):
        socks(pproxy.url_for("auth", "socks5"), "127.0.0.1", tcp_target.port, options)


def test_socks5_ipv6_target(pproxy: Any, options: Any) -> None:
    from proxypeers import TCPEcho, ipv6_available, need

    need(ipv6_available(), "IPv6 loopback is not available")
    target = TCPEcho("::1")
    try:
        for host in ("::1", "[::1]"):
            stream = socks(pproxy.url_for("open", "socks5"), host, target.port, options)
            try:
                echo_roundtrip(stream, b"v6 via socks5")
            finally:
                stream.close()
    finally:
        target.stop()


def test_socks4_refuses_ipv6(pproxy: Any, options: Any) -> None:
    with pytest.raises(ProxyError, match="SOCKS4 cannot reach the IPv6 address"):
        socks(pproxy.url_for("open", "socks4"), "::1", 80, options)


def test_socks4_local_resolution_failure(pproxy: Any, options: Any) -> None:
    with pytest.raises(ConnectFailed, match="cannot resolve"):
        socks(pproxy.url_for("open", "socks4"), "no-such-host.invalid", 80, options)


# --------------------------------------------------------------------------- dante


def test_dante_open(dante_open: Any, tcp_target: Any, options: Any) -> None:
    stream = socks(dante_open.url("socks5"), "127.0.0.1", tcp_target.port, options)
    try:
        assert stream.getpeername()[:2] == dante_open.address
        echo_roundtrip(stream, b"via dante")
    finally:
        stream.close()


def test_dante_username_auth(dante_auth: Any, tcp_target: Any, options: Any) -> None:
    stream = socks(
        dante_auth.url("socks5h", DANTE_USER, DANTE_PASSWORD), "localhost", tcp_target.port, options
    )
    try:
        echo_roundtrip(stream, b"dante user auth")
    finally:
        stream.close()


def test_dante_wrong_password(dante_auth: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        socks(dante_auth.url("socks5", DANTE_USER, "Not-The-Pass"), "127.0.0.1", tcp_target.port, options)
    assert "Not-The-Pass" not in str(info.value)
    assert info.value.response is None


def test_dante_no_credentials(dante_auth: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired, match="refused the authentication"):
        socks(dante_auth.url("socks5"), "127.0.0.1", tcp_target.port, options)


def test_dante_rule_refusal(dante_open: Any, options: Any) -> None:
    with pytest.raises(ProxyError, match="refused the connection") as info:
        socks(dante_open.url("socks5"), "127.0.0.1", dante_open.blocked_port, options)
    assert not isinstance(info.value, ProxyAuthenticationRequired)


def test_dante_target_refused(dante_open: Any, refused_port: int, options: Any) -> None:
    with pytest.raises(ProxyError, match="refused"):
        socks(dante_open.url("socks5"), "127.0.0.1", refused_port, options)


# --------------------------------------------------------------------------- failures without a proxy


def test_unreachable_socks_proxy(refused_port: int, options: Any) -> None:
    with pytest.raises(ProxyError, match=r"cannot connect to the proxy socks5://127\.0\.0\.1") as info:
        open_tunnel(
            ProxyURL("socks5", "127.0.0.1", refused_port, "u", "Hidden-Pw"),
            "127.0.0.1",
            80,
            deadline=deadline(),
            options=options(),
        )
    assert "Hidden-Pw" not in str(info.value)


def test_silent_socks_proxy_times_out(options: Any) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with pytest.raises(ConnectTimeout):
            open_tunnel(
                ProxyURL("socks5", "127.0.0.1", silent.getsockname()[1]),
                "127.0.0.1",
                80,
                deadline=deadline(0.3),
                options=options(),
            )
    finally:
        silent.close()


def test_a_socks_proxy_trickling_its_answers_is_bounded_by_the_timeout(tcp_target: Any) -> None:
    """PySocks alone waits a whole timeout for each of its 12 reads here; the opening must
    still end within its one timeout."""

    def answer(trickler: Trickler, conn: socket.socket) -> None:
        conn.recv(3)  # greeting: version, 1 method, "no authentication"
        if trickler.send(conn, b"\x05\x00"):
            conn.recv(4096)  # the CONNECT request
            trickler.send(conn, b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50")

    with Trickler(answer) as proxy:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            url = f"ws://127.0.0.1:{tcp_target.port}/"
            wsclient.connect(url, proxies={"ws": f"socks5://127.0.0.1:{proxy.port}"}, timeout=1.0)
        assert time.monotonic() - started < 1.0 + 1.0


def test_missing_pysocks_names_the_extra() -> None:
    """Run in a child interpreter where ``import socks`` fails."""
    code = (
        "import sys, time\n"
        "sys.modules['socks'] = None\n"
        "from wsclient.proxy import open_tunnel, ProxyURL\n"
        "from wsclient.exceptions import ProxyError\n"
        "try:\n"
        "    open_tunnel(ProxyURL('socks5', '127.0.0.1', 1), 'h', 1, deadline=None, options=None)\n"
        "except ProxyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install python-wsclient[socks]" in out.stdout, out.stderr
