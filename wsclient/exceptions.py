"""The exception tree of wsclient.

This module imports nothing from the package, so every other module can import it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InvalidStatus",
    "InvalidURL",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyAuthenticationRequired",
    "ProxyError",
    "TLSError",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Base class of every exception that wsclient raises on purpose."""


class ConnectFailed(WebSocketError):
    """The opening (TCP, proxy, TLS or handshake) did not complete.

    ``__cause__`` keeps the original error when there was one.
    """


class InvalidURL(ConnectFailed, ValueError):
    """The URL is not a usable ``ws://`` or ``wss://`` URL (or a proxy URL is unusable)."""


class ConnectTimeout(ConnectFailed, TimeoutError):
    """The opening did not complete within ``timeout`` seconds."""


class ProxyError(ConnectFailed):
    """The proxy refused, failed, or could not be reached."""

    def __init__(self, message: str, *, response: Any = None) -> None:
        super().__init__(message)
        #: The proxy's HTTP answer (``status``, ``reason``, ``headers``, ``body``), when HTTP.
        self.response = response


class ProxyAuthenticationRequired(ProxyError):
    """The proxy asked for credentials (HTTP 407) or refused the ones given (SOCKS)."""


class TLSError(ConnectFailed):
    """The TLS handshake failed (certificate, hostname, protocol version, ...)."""


class HandshakeError(ConnectFailed):
    """The server's answer to the opening handshake was not an acceptable 101."""


class InvalidStatus(HandshakeError):
    """The server answered with a status other than 101.

    ``response`` has ``status``, ``reason``, ``headers`` and ``body``.
    """

    def __init__(self, message: str, response: Any) -> None:
        super().__init__(message)
        self.response = response


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how it ended."""

    def __init__(self, code: int, reason: str = "", message: str | None = None) -> None:
        self.code = code
        self.reason = reason
        if message is None:
            message = f"connection closed: code {code}" + (f", reason {reason!r}" if reason else "")
        super().__init__(message)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or without a closing handshake."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 (or RFC 7692).

    ``code`` is the close code that the client sends for it (1002 by default).
    """

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooBig(ProtocolError):
    """A received frame or message is larger than the configured limit (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


def closed_exception(code: int, reason: str) -> ConnectionClosed:
    """Build the ``ConnectionClosed`` subclass that fits a close code."""
    if code in (1000, 1001):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)
