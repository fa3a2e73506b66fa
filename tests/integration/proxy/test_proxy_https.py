"""https:// proxies (TLS to the proxy) and TLS-in-TLS to a wss target."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import pytest
from proxypeers import BASIC_PASSWORD, PPROXY_PASSWORD, USER, deadline, echo_roundtrip

from wsclient.exceptions import ConnectTimeout, ProxyAuthenticationRequired, ProxyError, TLSError
from wsclient.proxy import TLSInTLSStream, open_tunnel, parse_proxy_url, wrap_tls_in_tls
from wsclient.transport.tls import make_ssl_context


def _https_tunnel(url: str, host: str, port: int, options: Any, **kwargs: Any) -> Any:
    opts = options(**kwargs)
    verify = opts.verify if opts.proxy_verify is None else opts.proxy_verify
    proxy_tls = make_ssl_context(verify, opts.proxy_cert)
    return open_tunnel(parse_proxy_url(url), host, port, deadline=deadline(), options=opts, proxy_tls=proxy_tls)


@pytest.fixture(params=["squid", "pproxy"])
def https_proxy(request: pytest.FixtureRequest) -> str:
    """URL (with credentials) of an https:// proxy."""
    if request.param == "squid":
        squid = request.getfixturevalue("squid_https")
        return str(squid.url("https", USER, BASIC_PASSWORD))
    pproxy = request.getfixturevalue("pproxy")
    return str(pproxy.url_for("https", "https", USER, PPROXY_PASSWORD))


def test_https_proxy_plain_target(https_proxy: str, proxy_tls: Any, tcp_target: Any, options: Any) -> None:
    stream = _https_tunnel(https_proxy, tcp_target.host, tcp_target.port, options, verify=proxy_tls.ca_path)
    try:
        assert isinstance(stream, ssl.SSLSocket)
        echo_roundtrip(stream, b"inside TLS to the proxy")
    finally:
        stream.close()


def test_proxy_verify_overrides_verify(
    https_proxy: str, proxy_tls: Any, tcp_target: Any, options: Any, other_ca_path: str
) -> None:
    # verify= would refuse the proxy's certificate; proxy_verify accepts it.
    stream = _https_tunnel(
        https_proxy,
        tcp_target.host,
        tcp_target.port,
        options,
        verify=other_ca_path,
        request_options={"proxy_verify": proxy_tls.ca_path},
    )
    stream.close()
    stream = _https_tunnel(
        https_proxy,
        tcp_target.host,
        tcp_target.port,
        options,
        verify=other_ca_path,
        request_options={"proxy_verify": False},
    )
    stream.close()


def test_untrusted_proxy_certificate(
    https_proxy: str, tcp_target: Any, options: Any, other_ca_path: str
) -> None:
    with pytest.raises(ProxyError, match=r"certificate of the proxy .* could not be verified") as info:
        _https_tunnel(https_proxy, tcp_target.host, tcp_target.port, options, verify=other_ca_path)
    assert isinstance(info.value.__cause__, ssl.SSLError)
    assert BASIC_PASSWORD not in str(info.value) and PPROXY_PASSWORD not in str(info.value)


def test_https_proxy_wrong_password(squid_https: Any, proxy_tls: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired):
        _https_tunnel(
            squid_https.url("https", USER, "bad"),
            tcp_target.host,
            tcp_target.port,
            options,
            verify=proxy_tls.ca_path,
        )


def test_tls_proxy_speaking_plain_http(squid_open: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyError, match="TLS handshake with the proxy"):
        _https_tunnel(squid_open.url("https"), tcp_target.host, tcp_target.port, options)


def _tls_in_tls(
    https_proxy: str, proxy_tls: Any, wss_target: Any, options: Any, ca_path: str
) -> TLSInTLSStream:
    outer = _https_tunnel(https_proxy, wss_target.host, wss_target.port, options, verify=proxy_tls.ca_path)
    return wrap_tls_in_tls(outer, make_ssl_context(ca_path), "127.0.0.1", deadline())


def _ws_handshake(stream: Any, path: str) -> None:
    import base64
    import os

    key = base64.b64encode(os.urandom(16)).decode()
    stream.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = stream.recv(4096)
        assert chunk
        head += chunk
    assert head.startswith(b"HTTP/1.1 101")


def test_tls_in_tls_handshake(
    https_proxy: str, proxy_tls: Any, wss_target: Any, options: Any, ca_path: str
) -> None:
    stream = _tls_in_tls(https_proxy, proxy_tls, wss_target, options, ca_path)
    try:
        assert stream.version() in ("TLSv1.2", "TLSv1.3")
        assert stream.getpeercert()["subjectAltName"]  # the target's certificate
        assert stream.getpeername()[:2] == ("127.0.0.1", int(https_proxy.rsplit(":", 1)[1]))
        path = f"/tls-in-tls-{time.monotonic_ns()}"
        _ws_handshake(stream, path)
        seen = wss_target.find(path)
        assert seen.peer[1] != stream.getsockname()[1]  # the target's peer is the proxy
    finally:
        stream.shutdown(socket.SHUT_RDWR)
        stream.close()


def test_tls_in_tls_untrusted_target(
    https_proxy: str, proxy_tls: Any, wss_target: Any, options: Any, other_ca_path: str
) -> None:
    with pytest.raises(TLSError, match="could not be verified"):
        _tls_in_tls(https_proxy, proxy_tls, wss_target, options, other_ca_path)


def test_tls_in_tls_timeout(https_proxy: str, proxy_tls: Any, options: Any, ca_path: str) -> None:
    """The target accepts but never answers the ClientHello."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        outer = _https_tunnel(
            https_proxy, "127.0.0.1", silent.getsockname()[1], options, verify=proxy_tls.ca_path
        )
        with pytest.raises(ConnectTimeout):
            wrap_tls_in_tls(outer, make_ssl_context(ca_path), "127.0.0.1", deadline(0.3))
    finally:
        silent.close()


def test_tls_in_tls_concurrent_reader_and_writers(
    https_proxy: str, proxy_tls: Any, options: Any, ca_path: str, server_tls: Any
) -> None:
    """A reader blocked in recv() must not stop other threads from sending; shutdown()
    unblocks it. The target is a TLS echo (TLS terminated by a small thread)."""
    echo = _TLSEcho(server_tls.server_context)
    try:
        outer = _https_tunnel(https_proxy, "127.0.0.1", echo.port, options, verify=proxy_tls.ca_path)
        stream = wrap_tls_in_tls(outer, make_ssl_context(ca_path), "127.0.0.1", deadline())
        stream.settimeout(None)
        received = bytearray()
        done = threading.Event()
        total = 4 * 200 * 1000

        def reader() -> None:
            while True:
                data = stream.recv(65536)
                if not data:
                    break
                received.extend(data)
                if len(received) >= total:
                    done.set()
            done.set()

        reading = threading.Thread(target=reader, name="test-reader")
        reading.start()
        time.sleep(0.1)  # the reader is now blocked in recv() on an idle stream

        def writer(tag: bytes) -> None:
            for _ in range(200):
                stream.sendall(tag * 1000)

        writers = [threading.Thread(target=writer, args=(bytes([65 + i]),)) for i in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(30)
            assert not thread.is_alive()
        assert done.wait(30)
        assert len(received) == total
        # Each sendall() went out whole: 1000-byte runs of one letter.
        for start in range(0, total, 1000):
            assert received[start : start + 1000] == received[start : start + 1] * 1000
        # The reader is blocked again in recv() on the idle stream: shutdown() wakes it.
        assert reading.is_alive()
        stream.shutdown(socket.SHUT_RDWR)
        reading.join(10)
        assert not reading.is_alive()
        stream.close()
    finally:
        echo.stop()


class _TLSEcho:
    """A TLS echo server on a thread (one connection at a time)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.conns: list[Any] = []
        self.thread = threading.Thread(target=self._run, name="test-tls-echo", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(raw,), daemon=True).start()

    def _echo(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        self.conns.append(conn)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
