"""``wsclient --diagnose URL``: the opening walked stage by stage.

A minimal version: it times a direct TCP connection (when no proxy is configured), the whole
opening through :func:`wsclient.connect` and a ping round trip. Each stage prints
``"<stage>: ok (<ms> ms) <details>"`` or ``"<stage>: FAILED (<ms> ms) <error>"`` followed by
``"hint: <what to try>"``, and the walk stops at the first failure.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO, TypeVar

from .exceptions import (
    ConnectFailed,
    ConnectTimeout,
    InvalidURL,
    ProxyAuthenticationRequired,
    ProxyError,
    TLSError,
    WebSocketError,
)
from .uri import parse_uri

__all__ = ["run"]

T = TypeVar("T")


class _Failed(Exception):
    pass


def _hint(exc: BaseException) -> str:
    if isinstance(exc, InvalidURL):
        return "check the URL: ws://host[:port]/path or wss://host[:port]/path"
    if isinstance(exc, ProxyAuthenticationRequired):
        return "give the proxy's credentials in its URL: --proxy http://user:password@host:port"
    if isinstance(exc, ProxyError):
        return "check the proxy URL, or try --no-proxy to connect directly"
    if isinstance(exc, TLSError):
        return "pass the server's CA with --ca FILE, or --system-trust to use the OS trust store"
    if isinstance(exc, ConnectTimeout):
        return "a firewall may drop the packets: try a proxy (--proxy) or a longer --timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens on that port: check the host and port of the URL"
    if isinstance(exc, ConnectFailed):
        return "run with -v to see the handshake"
    return "check the host name and the network"


def run(url: str, connect_kwargs: Mapping[str, Any], out: TextIO) -> int:
    """Walk the opening of ``url`` and print one line per stage to ``out``.

    Args:
        url: the ``ws://`` or ``wss://`` URL.
        connect_kwargs: the keyword arguments of :func:`wsclient.connect` to use.
        out: where the lines go.

    Returns:
        0 when every stage passed, 1 otherwise.
    """

    def stage(name: str, action: Callable[[], tuple[T, str]]) -> T:
        start = time.monotonic()
        try:
            value, details = action()
        except (OSError, WebSocketError, ValueError, ImportError) as exc:
            ms = (time.monotonic() - start) * 1000
            out.write(f"{name}: FAILED ({ms:.0f} ms) {exc}\n")
            out.write(f"hint: {_hint(exc)}\n")
            out.flush()
            raise _Failed from exc
        ms = (time.monotonic() - start) * 1000
        out.write(f"{name}: ok ({ms:.0f} ms) {details}\n".rstrip() + "\n")
        out.flush()
        return value

    kwargs = dict(connect_kwargs)
    timeout = kwargs.get("timeout", 10.0)
    try:
        try:
            uri = parse_uri(url)
        except InvalidURL as exc:
            out.write(f"handshake: FAILED (0 ms) {exc}\nhint: {_hint(exc)}\n")
            return 1
        direct = kwargs.get("proxies") == {} or (
            kwargs.get("proxies") is None and not _env_proxy(uri.scheme)
        )
        if direct:

            def tcp() -> tuple[None, str]:
                sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
                peer = sock.getpeername()
                sock.close()
                return None, f"connected to {peer[0]} port {peer[1]}"

            stage("tcp", tcp)

        from .api import connect

        def handshake() -> tuple[Any, str]:
            ws = connect(url, **kwargs)
            return ws, f"{ws.response.status} {ws.response.reason}; subprotocol {ws.subprotocol}; extensions {ws.extensions}"

        ws = stage("handshake", handshake)
        try:

            def ping() -> tuple[None, str]:
                got = threading.Event()
                ws.on("pong", lambda data: got.set())
                ws.ping(b"wsclient-diagnose")
                if not got.wait(timeout if timeout is not None else 10.0):
                    raise TimeoutError("no pong within the timeout")
                return None, "pong received"

            stage("ping", ping)
        finally:
            ws.close()
    except _Failed:
        return 1
    return 0


def _env_proxy(scheme: str) -> bool:
    names = ["ws_proxy", "http_proxy", "all_proxy"] if scheme == "ws" else ["wss_proxy", "https_proxy", "all_proxy"]
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in names)
