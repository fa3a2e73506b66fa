"""abort() ends an opening at every stage, with the "aborted" error, well before timeout.

A silent TCP server (it accepts, then says nothing) stands for a stuck TLS handshake, a
stuck SOCKS negotiation, an HTTP proxy that never answers CONNECT, and a server that never
answers the opening handshake.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import wsclient
from wsclient import ConnectFailed, ConnectTimeout


class SilentServer:
    """Accepts connections and never writes; closes them at stop()."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-silent", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def _abort_after(client: wsclient.WebSocketClient, delay: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), client.abort()), name="test-abort")
    t.start()
    return t


@pytest.mark.parametrize(
    "stage",
    ["handshake", "tls", "http-proxy", "https-proxy", "socks5-proxy"],
)
def test_abort_ends_a_stuck_opening(silent: SilentServer, stage: str) -> None:
    port = silent.port
    url = f"ws://127.0.0.1:{port}/"
    request_options: dict[str, Any] = {"timeout": 20, "proxies": {}}
    if stage == "tls":
        url = f"wss://127.0.0.1:{port}/"
    elif stage.endswith("-proxy"):
        scheme = stage.split("-")[0]
        url = "ws://127.0.0.1:9/"  # never reached: the proxy is silent
        request_options["proxies"] = {"ws": f"{scheme}://127.0.0.1:{port}"}
        request_options["proxy_verify"] = False
    client = wsclient.WebSocketClient(ping_interval=None)
    failures: list[BaseException] = []
    client.on("connect_failed", failures.append)
    aborter = _abort_after(client, 0.3)
    started = time.monotonic()
    with pytest.raises(ConnectFailed) as info:
        client.connect(url, request_options=request_options)
    elapsed = time.monotonic() - started
    aborter.join(10)
    assert not isinstance(info.value, ConnectTimeout)
    assert "aborted" in str(info.value)
    assert elapsed < 10, f"abort took {elapsed:.1f}s"  # a hang would take the 20 s timeout
    assert len(failures) == 1 and failures[0] is info.value


def test_abort_with_wait_false_does_not_block(silent: SilentServer) -> None:
    client = wsclient.WebSocketClient(ping_interval=None)
    done = threading.Event()
    failures: list[BaseException] = []
    client.on("connect_failed", lambda e: (failures.append(e), done.set()))
    assert client.connect(f"wss://127.0.0.1:{silent.port}/", request_options={"timeout": 20}, wait=False) is None
    time.sleep(0.3)
    client.abort()
    assert done.wait(10)
    assert "aborted" in str(failures[0])
    client.abort()  # after connect_failed: does nothing


def test_chunked_401_on_a_kept_open_connection_is_invalid_status() -> None:
    """A non-101 with a chunked body from a server that keeps the connection open."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n"
                b"WWW-Authenticate: Bearer realm=x\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            time.sleep(3)  # keeps the connection open

    t = threading.Thread(target=serve, name="test-401", daemon=True)
    t.start()
    started = time.monotonic()
    with pytest.raises(wsclient.InvalidStatus) as info:
        wsclient.connect(f"ws://127.0.0.1:{port}/", timeout=10, proxies={})
    assert time.monotonic() - started < 2.5  # not the 10 s timeout
    assert info.value.response.status == 401
    assert info.value.response.body == b"hello"
    assert info.value.response.headers["www-authenticate"] == "Bearer realm=x"
    t.join(5)
    srv.close()
