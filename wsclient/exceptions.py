"""The exception tree of wsclient.

This module imports nothing from the package, so every other module can import it.

Every class pickles and copies with its attributes (``code``, ``reason``, ``response``), so
an exception crosses a process boundary intact (a Celery result, a ``ProcessPoolExecutor``):
the classes whose ``__init__`` takes more than the message define ``__reduce__``, because
``BaseException`` pickles ``self.args`` alone and would call ``__init__`` with the message only.
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
    "redact_url",
    "status_message",
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

    ``response`` has ``status``, ``reason``, ``headers`` and ``body`` (the start of the
    body). The message says the status, the reason and the ``Location`` when there is one.
    """

    def __init__(self, message: str | None, response: Any) -> None:
        if message is None:
            message = status_message(response)
        super().__init__(message)
        self.response = response

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0] if self.args else None, self.response), self.__dict__)


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how it ended."""

    def __init__(self, code: int, reason: str = "", message: str | None = None) -> None:
        self.code = code
        self.reason = reason
        if message is None:
            message = f"connection closed: code {code}" + (f", reason {reason!r}" if reason else "")
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        message = self.args[0] if self.args else None
        return (type(self), (self.code, self.reason, message), self.__dict__)


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0] if self.args else "", self.code), self.__dict__)


class PayloadTooBig(ProtocolError):
    """A received frame or message is larger than the configured limit (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0] if self.args else "",), self.__dict__)


def closed_exception(code: int, reason: str) -> ConnectionClosed:
    """Build the ``ConnectionClosed`` subclass that fits a close code."""
    if code in (1000, 1001):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


def status_message(response: Any, why: str | None = None) -> str:
    """The message of an ``InvalidStatus``: status, reason, ``Location`` when there is one.

    ``why`` (e.g. why a redirect was not followed) is appended when given.
    """
    status = getattr(response, "status", "?")
    reason = (getattr(response, "reason", "") or "").strip()
    message = f"server rejected WebSocket connection: HTTP {status} {reason}".rstrip()
    headers = getattr(response, "headers", None)
    location = headers.get("Location") if headers is not None else None
    if location:
        # Cut a long or hostile value; repr() shows control characters escaped.
        message += f" (Location: {redact_url(location[:200])!r})"
    if why:
        message += f": {why}"
    return message


def redact_url(url: str) -> str:
    """``url`` with the credentials of its authority (``user:password@``) replaced by ``***``.

    Works on text that does not parse as a URL too (it is used to build error messages
    about such text), so it finds the authority by hand: after ``//``, up to the query.
    """
    start = url.find("//")
    if start < 0:
        return url
    start += 2
    end = len(url)
    for sep in "?#":
        pos = url.find(sep, start)
        if pos >= 0:
            end = min(end, pos)
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    userinfo = url[start:at]
    # "ws://host/path/@x" has an "@" in its path, not credentials: keep it, unless the part
    # before the "@" looks like user:password (a password may hold a raw "/").
    if "/" in userinfo and ":" not in userinfo:
        return url
    return url[:start] + "***@" + url[at + 1 :]
