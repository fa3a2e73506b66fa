"""The opening's shared primitives, below both ``transport/`` and ``proxy/``: the one
:class:`Deadline`, the one error-mapping idiom (:func:`map_errors`), and the one way to open
TCP (:func:`open_tcp`: DNS and TCP as separate, traced stages, with the socket options).
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from urllib3.util.connection import create_connection

from .exceptions import ConnectFailed, ConnectTimeout, ProxyError, WebSocketError

__all__ = [
    "Deadline",
    "OnSocket",
    "Trace",
    "TransportOptions",
    "Unreachable",
    "call_within",
    "map_errors",
    "open_tcp",
    "recv_within",
    "resolve",
    "send_within",
    "tcp_socket_options",
    "tls_info",
]

logger = logging.getLogger("wsclient.transport")

#: ``trace(stage, info)``: called when a stage of the opening ends successfully.
Trace = Callable[[str, dict[str, Any]], None]
#: Called with each socket as soon as it exists, so ``abort()`` can shut it down.
OnSocket = Callable[[Any], None]
#: An error table for :func:`map_errors`: foreign type -> function making our exception.
ErrorTable = Mapping[type[BaseException], Callable[[Any], WebSocketError]]


@dataclass(frozen=True)
class TransportOptions:
    """Everything the opening needs besides the URL and the deadline, typed and validated
    once at the edge (``transport.options.parse_request_options``); nothing below reads the
    user's ``request_options`` dict."""

    verify: bool | str | ssl.SSLContext = True
    cert: str | tuple[str, ...] | None = None
    tls_options: Mapping[str, Any] = field(default_factory=dict)
    proxies: Mapping[str, str | None] | None = None
    trust_env: bool = True
    #: ``request_options["proxy"]``: None when not given, "" for a forced direct connection.
    proxy: str | None = None
    proxy_headers: tuple[tuple[str, str], ...] = ()
    #: TLS to an ``https://`` proxy: None means "as ``verify``".
    proxy_verify: bool | str | ssl.SSLContext | None = None
    proxy_cert: str | tuple[str, ...] | None = None
    timeout: float | None = 10.0
    disable_nagle_algorithm: bool = True
    source_address: tuple[str, int] | None = None
    socket_options: tuple[tuple[int, int, Any], ...] = ()
    server_hostname: str | None = None
    ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        # Proxy URLs and headers may carry credentials: never show them.
        shown = "<set>" if self.proxies or self.proxy else None
        return f"TransportOptions(verify={self.verify!r}, proxies={shown}, trust_env={self.trust_env})"


class Unreachable(ConnectFailed):
    """The peer (target or proxy) could not be reached at all: unresolvable, refused,
    unreachable or silent at TCP. The opening moves on to the next proxy candidate."""


class UnreachableProxy(Unreachable, ProxyError):
    """A proxy that could not be reached."""


class UnreachableTimeout(Unreachable, ConnectTimeout):
    """A peer that did not accept the TCP connection in time."""


class Deadline:
    """The instant an opening must end by (``time.monotonic()``), passed down whole.

    ``Deadline(None)`` never expires. :meth:`timeout` gives the seconds left for the next
    blocking call, or raises ``ConnectTimeout`` when none are left.
    """

    __slots__ = ("_end",)

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (may be negative), None when unbounded."""
        return None if self._end is None else self._end - time.monotonic()

    def timeout(self, what: str = "the opening") -> float | None:
        """Seconds left for a socket timeout; raises ``ConnectTimeout`` naming ``what``."""
        left = self.remaining()
        if left is not None and left <= 0:
            raise ConnectTimeout(f"timed out {what}")
        return left

    def shorter(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, or this one if it comes first."""
        other = Deadline(seconds)
        left = self.remaining()
        if left is not None and left < seconds:
            other._end = self._end
        return other

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining()!r})"


class map_errors:  # lower case: used like a function, ``with map_errors(table):``
    """Translate the foreign exceptions of one call site into wsclient's, ``from`` the original.

    The first entry of ``table`` (in order) whose type matches wins; ``WebSocketError``
    passes through untouched (with ``passthrough=False`` the table applies to it too: a
    caller that reports a sub-step's errors as its own); anything else not in the table
    propagates as it is. (A class rather than a generator context manager: every opening
    enters it twice, and this costs a fraction of ``contextlib``'s machinery.)
    """

    __slots__ = ("_passthrough", "_table")

    def __init__(self, table: ErrorTable, *, passthrough: bool = True) -> None:
        self._table = table
        self._passthrough = passthrough

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        if self._passthrough and isinstance(exc, WebSocketError):
            return False
        for source, make in self._table.items():
            if isinstance(exc, source):
                raise make(exc) from exc
        return False


def tcp_socket_options(
    socket_options: Sequence[tuple[int, int, Any]], nodelay: bool
) -> list[tuple[int, int, Any]]:
    """The user's socket options, plus ``TCP_NODELAY`` when asked and not given."""
    opts = list(socket_options)
    if nodelay and not any(o[:2] == (socket.IPPROTO_TCP, socket.TCP_NODELAY) for o in opts):
        opts.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
    return opts


def _literal_family(host: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` for an IP address (an IPv6 one may carry a zone), None for
    a host name. ``inet_pton`` answers in about 0.3 us, ``ipaddress.ip_address`` in about 8."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.partition("%")[0])
        except (OSError, ValueError):
            continue
        return family
    return None


def resolve(host: str, port: int, timeout: float | None, what: str) -> list[Any]:
    """``getaddrinfo`` within ``timeout``.

    The C resolver cannot be interrupted, so a host name is resolved by :func:`call_within`;
    past ``timeout`` the opening fails with ``UnreachableTimeout``. IP literals (and no
    timeout) resolve inline: no thread, no cost.
    """
    family = _literal_family(host)
    if family == socket.AF_INET:
        # Nothing to look up: the address as getaddrinfo() would give it, without its ~7 us.
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    if family is not None or timeout is None:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return call_within(  # type: ignore[no-any-return]
        timeout,
        lambda: UnreachableTimeout(f"timed out resolving {what}"),
        "wsclient-resolve",
        socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM,
    )


def call_within(
    timeout: float, expired: Callable[[], BaseException], name: str, fn: Callable[..., Any], *args: Any
) -> Any:
    """``fn(*args)``, waited for at most ``timeout`` seconds, for a call that blocks in C
    with no timeout of ours (the system resolver, a Kerberos exchange with the KDC).

    It runs on a short-lived daemon thread named ``name``; past ``timeout`` the error
    ``expired()`` is raised here and the thread ends when the call returns (its result is
    dropped). An exception of ``fn`` is raised here.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(fn(*args))
        except BaseException as exc:  # handed to the waiting caller, raised there
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    if not done.wait(max(timeout, 0.0)):
        raise expired()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def open_tcp(
    host: str,
    port: int,
    deadline: Deadline,
    *,
    what: str,
    proxy: bool = False,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, Any]] = (),
    on_socket: OnSocket | None = None,
    trace: Trace | None = None,
    attempt_timeout: float | None = None,
) -> socket.socket:
    """Resolve ``host`` (the "dns" stage) and connect to its addresses in order (the "tcp"
    stage), within ``deadline`` (and ``attempt_timeout`` in all, when given).

    Raises:
        Unreachable: unresolvable or unreachable (a ``ProxyError`` too when ``proxy``), the
            message naming ``what``; ``UnreachableTimeout`` when the time ran out. The
            original error is ``__cause__``.
    """
    started = time.monotonic()
    error_type = UnreachableProxy if proxy else Unreachable
    bound = deadline if attempt_timeout is None else deadline.shorter(attempt_timeout)
    with map_errors({socket.gaierror: lambda e: error_type(f"cannot resolve {what}: {e.strerror or e}")}):
        infos = resolve(host.strip("[]"), port, bound.remaining(), what)
    if trace is not None:
        addresses = [info[4][0] for info in infos]
        trace("dns", {"host": host, "addresses": addresses, "seconds": time.monotonic() - started})
    error: BaseException | None = None
    for _family, _kind, _proto, _, address in infos:
        try:
            left = bound.remaining()
            if left is not None and left <= 0:
                raise UnreachableTimeout(f"timed out connecting to {what}")
            begun = time.monotonic()
            # urllib3 opens the TCP connection (socket options applied before connect()); it
            # gets the address already resolved, so DNS stays a stage of its own and runs once.
            # abort() reaches this socket when connect() returns, within the attempt's bound.
            sock = create_connection(
                (address[0], address[1]),
                timeout=left,
                source_address=source_address,
                socket_options=list(socket_options),
            )
        except OSError as exc:
            error = exc
            continue
        if on_socket is not None:
            on_socket(sock)
        if trace is not None:
            trace("tcp", {"address": address[:2], "seconds": time.monotonic() - begun})
        return sock
    assert error is not None
    with map_errors(
        {
            TimeoutError: lambda e: UnreachableTimeout(f"timed out connecting to {what}"),
            ConnectionRefusedError: lambda e: error_type(f"cannot connect to {what}: connection refused"),
            OSError: lambda e: error_type(f"cannot connect to {what}: {e.strerror or e}"),
        }
    ):
        raise error


def tls_info(sock: Any, seconds: float) -> dict[str, Any]:
    """What the "tls" and "proxy_tls" trace stages report about a finished handshake."""
    cert = sock.getpeercert() or {}

    def name(key: str) -> str:
        return ", ".join(f"{k}={v}" for rdn in cert.get(key, ()) for k, v in rdn)

    cipher = sock.cipher()
    return {
        "version": sock.version(),
        "cipher": cipher[0] if cipher else None,
        "subject": name("subject"),
        "issuer": name("issuer"),
        "not_after": cert.get("notAfter"),
        "seconds": seconds,
    }

# --- the opening handshake's I/O: bounded by the deadline ------------------------------------
#
# A socket with a timeout costs CPython an ioctl() per settimeout() and a poll() before every
# send and recv. On a plain TCP socket (left in blocking mode) the handshake instead tries each
# call without waiting (MSG_DONTWAIT) and polls only when the socket is not ready: connect +
# close lost five system calls this way. TLS and proxy streams keep socket timeouts (they
# take no flags).

_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


def _ready(sock: socket.socket, events: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))


def send_within(sock: Any, data: bytes, deadline: Deadline, what: str) -> None:
    """Send all of ``data`` before ``deadline``.

    Raises:
        ConnectTimeout: (from ``deadline``, naming ``what``) the socket took too long.
        OSError: the send failed.
    """
    if type(sock) is not socket.socket or not _DONTWAIT or not hasattr(select, "poll"):
        sock.settimeout(deadline.timeout(what))
        sock.sendall(data)
        return
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view, _DONTWAIT) :]
        except BlockingIOError:
            if not _ready(sock, select.POLLOUT, deadline.timeout(what)):
                raise ConnectTimeout(f"timed out {what}") from None


def recv_within(sock: Any, size: int, deadline: Deadline, what: str) -> bytes:
    """Up to ``size`` bytes (b"" at the end of the stream), waiting at most until ``deadline``.

    Raises:
        ConnectTimeout: (from ``deadline``, naming ``what``) nothing came in time.
        OSError: the read failed.
    """
    if type(sock) is not socket.socket or not _DONTWAIT or not hasattr(select, "poll"):
        sock.settimeout(deadline.timeout(what))
        return sock.recv(size)  # type: ignore[no-any-return]
    while True:
        try:
            return sock.recv(size, _DONTWAIT)
        except BlockingIOError:
            if not _ready(sock, select.POLLIN, deadline.timeout(what)):
                raise ConnectTimeout(f"timed out {what}") from None
