"""``open_tunnel`` through real HTTP proxies (squid, pproxy) and scripted misbehaving ones."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from proxypeers import (
    BASIC_PASSWORD,
    DIGEST_PASSWORD,
    PPROXY_PASSWORD,
    USER,
    ScriptedProxy,
    TCPEcho,
    deadline,
    echo_roundtrip,
    ipv6_available,
    need,
)

from wsclient.exceptions import ConnectTimeout, ProxyAuthenticationRequired, ProxyError
from wsclient.proxy import ProxyURL, ReplayStream, open_tunnel, parse_proxy_url


def tunnel(url: str, target: Any, options: Any, **kwargs: Any) -> Any:
    return open_tunnel(
        parse_proxy_url(url), target.host, target.port, deadline=deadline(), options=options(**kwargs)
    )


# --------------------------------------------------------------------------- squid


def test_squid_open_echo(squid_open: Any, tcp_target: Any, options: Any) -> None:
    stream = tunnel(squid_open.url(), tcp_target, options)
    try:
        local = stream.getsockname()
        echo_roundtrip(stream, b"through squid")
        assert stream.getpeername()[:2] == squid_open.address
    finally:
        stream.close()
    seen = next(s for s in tcp_target.seen if bytes(s.data) == b"through squid")
    # The target's peer was squid's outgoing socket, not ours (same host: ports differ).
    assert (seen.peer[0], seen.peer[1]) != (local[0], local[1])
    squid_open.wait_log(f"CONNECT 127.0.0.1:{tcp_target.port}")


def test_squid_basic(squid_basic: Any, tcp_target: Any, options: Any) -> None:
    stream = tunnel(squid_basic.url("http", USER, BASIC_PASSWORD), tcp_target, options)
    try:
        echo_roundtrip(stream, b"basic ok")
    finally:
        stream.close()
    line = squid_basic.wait_log(f"TCP_TUNNEL/200 CONNECT 127.0.0.1:{tcp_target.port} user={USER}")
    assert "user=alice" in line
    # Credentials went to the proxy only.
    assert all(BASIC_PASSWORD.encode() not in bytes(s.data) for s in tcp_target.seen)
    assert all(b"Proxy-Authorization" not in bytes(s.data) for s in tcp_target.seen)


def test_squid_basic_without_credentials(squid_basic: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        tunnel(squid_basic.url(), tcp_target, options)
    response = info.value.response
    assert response.status == 407
    assert response.headers.get_all("Proxy-Authenticate") == ['Basic realm="wsclient-basic"']
    assert response.reason == "Proxy Authentication Required"
    assert b"" != response.body  # squid's error page
    assert "407" in str(info.value) and "credentials" in str(info.value)


def test_squid_basic_wrong_password(squid_basic: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        tunnel(squid_basic.url("http", USER, "Wr0ng-Secret"), tcp_target, options)
    assert "Basic credentials refused" in str(info.value)
    assert "Wr0ng-Secret" not in str(info.value) and "Wr0ng-Secret" not in repr(info.value)
    assert info.value.response.status == 407
    assert isinstance(info.value, ProxyError)


def test_squid_digest(squid_digest: Any, tcp_target: Any, options: Any) -> None:
    stream = tunnel(squid_digest.url("http", USER, DIGEST_PASSWORD), tcp_target, options)
    try:
        echo_roundtrip(stream, b"digest ok")
    finally:
        stream.close()
    squid_digest.wait_log(f"TCP_TUNNEL/200 CONNECT 127.0.0.1:{tcp_target.port} user={USER}")


def test_squid_digest_wrong_password(squid_digest: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        tunnel(squid_digest.url("http", USER, "nope"), tcp_target, options)
    assert "Digest credentials refused" in str(info.value)
    assert any(v.startswith("Digest ") for v in info.value.response.headers.get_all("Proxy-Authenticate"))


def test_squid_ntlm_domain_user(squid_ntlm: Any, tcp_target: Any, options: Any) -> None:
    needs_spnego()
    stream = tunnel(squid_ntlm.url("http", "CORP\\alice", "whatever"), tcp_target, options)
    try:
        echo_roundtrip(stream, b"ntlm ok")
    finally:
        stream.close()
    line = squid_ntlm.wait_log(f"TCP_TUNNEL/200 CONNECT 127.0.0.1:{tcp_target.port}")
    # Authenticated (ntlm_fake_auth decodes only the first character of the UTF-16 names,
    # so squid logs "C\a"; the spnego proxy tests check the names and the password).
    assert "user=-" not in line and "user=C\\a" in line


def test_squid_strongest_scheme_wins(squid_all: Any, tcp_target: Any, options: Any) -> None:
    """squid offers Basic, Digest and NTLM: NTLM is used (fake helper: any password)."""
    needs_spnego()
    stream = tunnel(squid_all.url("http", USER, "not-the-basic-password"), tcp_target, options)
    stream.close()
    # Basic and Digest would have refused this password: the tunnel is NTLM's.
    line = squid_all.wait_log(f"TCP_TUNNEL/200 CONNECT 127.0.0.1:{tcp_target.port}")
    assert "user=-" not in line


def test_squid_refusal_is_proxy_error(squid_open: Any, options: Any) -> None:
    with pytest.raises(ProxyError) as info:
        open_tunnel(
            parse_proxy_url(squid_open.url()), "denied.invalid", 443, deadline=deadline(), options=options()
        )
    assert not isinstance(info.value, ProxyAuthenticationRequired)
    assert info.value.response.status == 403
    assert "403 Forbidden" in str(info.value)


def test_squid_unreachable_target(squid_open: Any, refused_port: int, options: Any) -> None:
    with pytest.raises(ProxyError) as info:
        open_tunnel(
            parse_proxy_url(squid_open.url()),
            "127.0.0.1",
            refused_port,
            deadline=deadline(),
            options=options(),
        )
    assert info.value.response.status in (502, 503)
    assert str(info.value.response.status) in str(info.value)


def test_proxy_headers_reach_the_proxy(squid_open: Any, tcp_target: Any, options: Any) -> None:
    marker = f"marker-{time.monotonic_ns()}"
    stream = tunnel(
        squid_open.url(), tcp_target, options, request_options={"proxy_headers": {"X-Wsclient-Test": marker}}
    )
    stream.close()
    squid_open.wait_log(f"xtest={marker}")


def test_ipv6_target_in_brackets(squid_open: Any, options: Any) -> None:
    need(ipv6_available(), "IPv6 loopback is not available")
    target = TCPEcho("::1")
    try:
        stream = open_tunnel(
            parse_proxy_url(squid_open.url()), "::1", target.port, deadline=deadline(), options=options()
        )
        try:
            echo_roundtrip(stream, b"v6")
        finally:
            stream.close()
        squid_open.wait_log(f"CONNECT [::1]:{target.port}")
    finally:
        target.stop()


def test_two_tunnels_at_once(squid_basic: Any, tcp_target: Any, options: Any) -> None:
    a = tunnel(squid_basic.url("http", USER, BASIC_PASSWORD), tcp_target, options)
    b = tunnel(squid_basic.url("http", USER, BASIC_PASSWORD), tcp_target, options)
    try:
        echo_roundtrip(a, b"first")
        echo_roundtrip(b, b"second")
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- pproxy (closes after 407)


def test_pproxy_http_basic_after_close(pproxy: Any, tcp_target: Any, options: Any) -> None:
    """pproxy closes the connection after its 407: the Basic answer goes on a new one."""
    stream = tunnel(pproxy.url_for("auth", "http", USER, PPROXY_PASSWORD), tcp_target, options)
    try:
        echo_roundtrip(stream, b"pproxy basic")
    finally:
        stream.close()


def test_pproxy_http_wrong_password(pproxy: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        tunnel(pproxy.url_for("auth", "http", USER, "bad"), tcp_target, options)
    assert info.value.response.headers["Proxy-Authenticate"] == 'Basic realm="simple"'


# --------------------------------------------------------------------------- unreachable proxy, timeouts


def test_unreachable_proxy(refused_port: int, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyError) as info:
        open_tunnel(
            ProxyURL("http", "127.0.0.1", refused_port, "u", "pw-never-shown"),
            tcp_target.host,
            tcp_target.port,
            deadline=deadline(),
            options=options(),
        )
    assert "cannot connect to the proxy http://127.0.0.1" in str(info.value)
    assert "pw-never-shown" not in str(info.value)
    assert info.value.__cause__ is not None


def test_unresolvable_proxy(tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyError, match="resolve"):
        open_tunnel(
            ProxyURL("http", "no-such-proxy.invalid", 3128),
            tcp_target.host,
            tcp_target.port,
            deadline=deadline(),
            options=options(),
        )


def test_silent_proxy_times_out(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    def silent(proxy: ScriptedProxy, conn: socket.socket) -> None:
        proxy.read_request(conn)
        conn.recv(1)  # hold the connection until the client gives up

    proxy = scripted_proxy(silent)
    with pytest.raises(ConnectTimeout):
        open_tunnel(
            parse_proxy_url(proxy.url),
            tcp_target.host,
            tcp_target.port,
            deadline=deadline(0.3),
            options=options(),
        )


def test_expired_deadline(squid_open: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ConnectTimeout):
        open_tunnel(
            parse_proxy_url(squid_open.url()),
            tcp_target.host,
            tcp_target.port,
            deadline=deadline(-1),
            options=options(),
        )


# --------------------------------------------------------------------------- scripted answers


def _answer(data: bytes, *, close: bool = True) -> Any:
    def script(proxy: ScriptedProxy, conn: socket.socket) -> None:
        proxy.read_request(conn)
        conn.sendall(data)
        if close:
            conn.close()
        else:
            conn.recv(1)

    return script


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "closed the connection without answering"),
        (b"HTTP/1.1 200 Conn", "closed the connection in the middle"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed status line"),
        (b"\x16\x03\x03\x00\x02\x02\x28\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n", "malformed header"),
    ],
)
def test_garbage_is_proxy_error(
    scripted_proxy: Any, tcp_target: Any, options: Any, answer: bytes, message: str
) -> None:
    proxy = scripted_proxy(_answer(answer))
    with pytest.raises(ProxyError, match=message):
        tunnel(proxy.url, tcp_target, options)


def test_endless_head_is_proxy_error(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    def endless(proxy: ScriptedProxy, conn: socket.socket) -> None:
        proxy.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(2000):
            conn.sendall(b"X-Filler: " + b"y" * 100 + b"\r\n")

    proxy = scripted_proxy(endless)
    with pytest.raises(ProxyError, match="larger than"):
        tunnel(proxy.url, tcp_target, options)


def test_error_status_with_chunked_body(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    body = b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    proxy = scripted_proxy(_answer(body, close=False))
    with pytest.raises(ProxyError) as info:
        tunnel(proxy.url, tcp_target, options)
    assert info.value.response.status == 502
    assert info.value.response.body == b"hello world"
    assert "502 Bad Gateway" in str(info.value)


def test_error_body_without_length(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    proxy = scripted_proxy(_answer(b"HTTP/1.0 503 Service Unavailable\r\n\r\nno route"))
    with pytest.raises(ProxyError) as info:
        tunnel(proxy.url, tcp_target, options)
    assert info.value.response.body == b"no route"
    assert info.value.response.http_version == "HTTP/1.0"


def test_interim_1xx_is_skipped_and_extra_bytes_replayed(scripted_proxy: Any, options: Any) -> None:
    """Bytes sent right after the 200 belong to the tunnel: they come out first."""

    def script(proxy: ScriptedProxy, conn: socket.socket) -> None:
        proxy.read_request(conn)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\n\r\nEARLY")
        while data := conn.recv(100):
            conn.sendall(data)

    proxy = scripted_proxy(script)
    stream = open_tunnel(
        parse_proxy_url(proxy.url), "example.com", 80, deadline=deadline(), options=options()
    )
    try:
        assert isinstance(stream, ReplayStream)
        buf = bytearray(3)
        assert stream.recv_into(buf) == 3 and bytes(buf) == b"EAR"
        assert stream.pending() == 2
        assert stream.recv(100) == b"LY"
        echo_roundtrip(stream, b"after")
        assert stream.getpeername()[1] == proxy.port
    finally:
        stream.close()
    assert proxy.requests[0].startswith(b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n")


def test_407_without_challenge(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    proxy = scripted_proxy(_answer(b"HTTP/1.1 407 Who Are You\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(ProxyAuthenticationRequired, match="offered no authentication scheme"):
        tunnel(proxy.url.replace("http://", "http://u:p@"), tcp_target, options)


def test_unknown_scheme_only(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    proxy = scripted_proxy(
        _answer(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: Kerberos\r\nContent-Length: 0\r\n\r\n")
    )
    with pytest.raises(ProxyAuthenticationRequired, match="kerberos"):
        tunnel(proxy.url.replace("http://", "http://u:p@"), tcp_target, options)


def test_missing_pyspnego_names_the_extra(scripted_proxy: Any) -> None:
    """NTLM-only proxy, pyspnego not importable (child interpreter): the message names the extra."""
    import subprocess
    import sys

    proxy = scripted_proxy(
        _answer(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n")
    )
    code = (
        "import sys, time\n"
        "sys.modules['spnego'] = None\n"
        "from wsclient.proxy import open_tunnel, parse_proxy_url\n"
        "from wsclient.exceptions import ProxyAuthenticationRequired\n"
        "from wsclient._net import Deadline, TransportOptions\n"
        "try:\n"
        f"    open_tunnel(parse_proxy_url('http://u:p@127.0.0.1:{proxy.port}'), 'h', 1,\n"
        "                deadline=Deadline(10), options=TransportOptions())\n"
        "except ProxyAuthenticationRequired as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install python-wsclient[ntlm]" in out.stdout, out.stderr


def test_ntlm_proxy_closing_mid_handshake(scripted_proxy: Any, tcp_target: Any, options: Any) -> None:
    """NTLM's second leg must stay on the connection: a proxy that closes it fails clearly."""
    needs_spnego()
    challenge = (
        "TlRMTVNTUAACAAAADAAMADgAAAAFgooCwzVH8j8G6kIAAAAAAAAAAIIAggBEAAAACgBjRQAAAA9DAE8AUgBQAAIADABD"
        "AE8AUgBQAAEADABQAFIATwBYAFkABAAUAGMAbwByAHAALgBsAG8AYwBhAGwAAwAiAHAAcgBvAHgAeQAuAGMAbwByAHAA"
        "LgBsAG8AYwBhAGwABQAUAGMAbwByAHAALgBsAG8AYwBhAGwABwAIAHCw0gq9q9kBAAAAAA=="
    )

    def script(proxy: ScriptedProxy, conn: socket.socket) -> None:
        request = proxy.read_request(conn)
        if b"Proxy-Authorization: NTLM" not in request:
            conn.sendall(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n")
            request = proxy.read_request(conn)
        conn.sendall(
            f"HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM {challenge}\r\nConnection: close\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        conn.close()

    proxy = scripted_proxy(script)
    with pytest.raises(ProxyAuthenticationRequired, match="closed the connection during the NTLM handshake"):
        tunnel(proxy.url.replace("http://", "http://u:p@"), tcp_target, options)


def test_bad_proxy_headers(options: Any) -> None:
    """Refused when the options are parsed, before any socket exists."""
    with pytest.raises(ValueError, match="CR, LF"):
        options(request_options={"proxy_headers": {"X": "a\r\nB: c"}})
    with pytest.raises(ValueError, match="invalid proxy header name"):
        options(request_options={"proxy_headers": {"Bad Name": "x"}})


def needs_spnego() -> None:
    try:
        import spnego  # noqa: F401
    except ImportError:
        need(False, "pyspnego (python-wsclient[ntlm]) is not installed")


def test_refusal_whose_body_never_ends_is_reported_after_a_short_wait(
    scripted_proxy: Any, tcp_target: Any, options: Any
) -> None:
    """A refusal's body that stops short is waited for 2 s at most, not the whole timeout."""
    proxy = scripted_proxy(_answer(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\npartial", close=False))
    started = time.monotonic()
    with pytest.raises(ProxyError) as info:
        open_tunnel(
            parse_proxy_url(proxy.url), tcp_target.host, tcp_target.port, deadline=deadline(30), options=options()
        )
    assert time.monotonic() - started < 2 + 1.5
    assert info.value.response.status == 403 and info.value.response.body == b"partial"
