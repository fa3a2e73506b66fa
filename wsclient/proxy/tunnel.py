"""HTTP CONNECT tunnels through ``http://`` and ``https://`` proxies, with authentication.

urllib3 opens the TCP (or TLS) connection to the proxy; the CONNECT request is written and
the proxy's answer is read here, so that every refusal becomes a precise exception and the
407 challenge/response (Negotiate, NTLM, Digest, Basic) runs on the same connection.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
)

from ..exceptions import ConnectTimeout, ProxyAuthenticationRequired, ProxyError
from ..handshake import Headers, Response
from .auth import (
    Authenticator,
    choose_authenticator,
    continues_handshake,
    forget_proxy_schemes,
    parse_challenges,
    preemptive_authenticator,
    remember_scheme,
)
from .streams import ReplayStream
from .url import ProxyURL

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEAD_SIZE",
    "ProxyResponse",
    "build_connect_request",
    "connect_authority",
    "open_http_tunnel",
    "parse_response_head",
]

logger = logging.getLogger("wsclient.proxy")

#: Largest response head (status line and headers) accepted from a proxy.
MAX_HEAD_SIZE = 64 * 1024
#: Largest error body kept (and read) from a proxy's refusal.
MAX_BODY_SIZE = 64 * 1024
#: CONNECT attempts on one tunnel (the first, then the authentication legs).
MAX_ATTEMPTS = 6
#: How long to wait for the end of an error body that has no length (the proxy should
#: close the connection after it); the refusal is reported after that in any case.
_UNFRAMED_BODY_WAIT = 2.0
_RECV_SIZE = 64 * 1024

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


#: A proxy's answer to CONNECT, as :class:`ProxyError` and
#: :class:`ProxyAuthenticationRequired` carry it in ``.response``: the same type as the
#: server's answer in ``InvalidStatus.response`` (``status``, ``reason``, ``headers`` with
#: ``headers.get_all("Proxy-Authenticate")``, ``body`` of at most :data:`MAX_BODY_SIZE`
#: bytes, ``http_version``).
ProxyResponse = Response


@dataclass
class _Head:
    version: tuple[int, int]
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)


def parse_response_head(head: bytes) -> _Head:
    """Parse a response head (without the blank line that ends it).

    Raises:
        ProxyError: the status line or a header line is malformed.
    """
    lines = re.split(rb"\r?\n", head)
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        shown = lines[0][:80].decode("latin-1")
        raise ProxyError(f"the proxy sent a malformed status line: {shown!r}")
    version = (int(match.group(1)), int(match.group(2)))
    reason = (match.group(4) or b"").decode("latin-1").strip()
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            # obs-fold: a continuation of the previous header's value.
            if not pairs:
                raise ProxyError("the proxy sent a malformed header block")
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        name_bytes, colon, value_bytes = line.partition(b":")
        name = name_bytes.decode("latin-1")
        if not colon or not _TOKEN.fullmatch(name):
            shown = line[:80].decode("latin-1")
            raise ProxyError(f"the proxy sent a malformed header line: {shown!r}")
        pairs.append((name, value_bytes.strip().decode("latin-1")))
    headers = Headers(pairs)
    return _Head(version, int(match.group(3)), reason, headers)


def connect_authority(host: str, port: int) -> str:
    """The CONNECT request target: ``host:port``, an IPv6 address in brackets."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid proxy header name {name!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"the value of the proxy header {name!r} contains CR, LF or NUL")


def _header_items(headers: Any) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items: Iterable[tuple[Any, Any]]
    if isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    result: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("proxy_headers must map str names to str values")
        _check_header(name, value)
        result.append((name, value))
    return result


def build_connect_request(
    authority: str,
    proxy_headers: Iterable[tuple[str, str]] = (),
    authorization: str | None = None,
) -> bytes:
    """The CONNECT request bytes.

    ``proxy_headers`` come after ``Host`` and may replace it; ``authorization`` (when
    given) replaces any ``Proxy-Authorization`` among them.
    """
    extra = list(proxy_headers)
    names = {name.lower() for name, _ in extra}
    lines = [f"CONNECT {authority} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {authority}")
    if "proxy-connection" not in names and "connection" not in names:
        # Keep the connection across a 407 so NTLM and Negotiate can finish on it.
        lines.append("Proxy-Connection: keep-alive")
    for name, value in extra:
        if authorization is not None and name.lower() == "proxy-authorization":
            continue
        lines.append(f"{name}: {value}")
    if authorization is not None:
        _check_header("Proxy-Authorization", authorization)
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeout(f"timed out {what}")
    return left


class _ProxyConnection:
    """One connection to the proxy: the socket plus the bytes read but not used yet."""

    def __init__(self, sock: socket.socket, proxy: ProxyURL) -> None:
        self.sock = sock
        self.proxy = proxy
        self.buffer = bytearray()
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes, deadline: float) -> None:
        self.sock.settimeout(_remaining(deadline, f"sending CONNECT to the proxy {self.proxy}"))
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise ConnectTimeout(f"timed out sending CONNECT to the proxy {self.proxy}") from exc
        except OSError as exc:
            raise ProxyError(
                f"the connection to the proxy {self.proxy} failed while sending CONNECT: {exc}"
            ) from exc

    def fill(self, deadline: float, what: str) -> bool:
        """Read more bytes into the buffer; False at the end of the stream."""
        if self.eof:
            return False
        self.sock.settimeout(_remaining(deadline, what))
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError as exc:
            raise ConnectTimeout(f"timed out {what}") from exc
        except ConnectionResetError:
            data = b""
        except OSError as exc:
            raise ProxyError(f"the connection to the proxy {self.proxy} failed: {exc}") from exc
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_head(self, deadline: float) -> _Head:
        """Read one response head, skipping ``1xx`` interim answers."""
        what = f"waiting for the proxy {self.proxy} to answer CONNECT"
        while True:
            while True:
                match = _HEAD_END.search(self.buffer)
                if match is not None:
                    break
                if len(self.buffer) > MAX_HEAD_SIZE:
                    raise ProxyError(
                        f"the proxy {self.proxy} sent a response head over {MAX_HEAD_SIZE} bytes"
                    )
                if not self.fill(deadline, what):
                    if self.buffer:
                        raise ProxyError(
                            f"the proxy {self.proxy} closed the connection in the middle of "
                            "its answer to CONNECT"
                        )
                    raise ProxyError(
                        f"the proxy {self.proxy} closed the connection without answering CONNECT"
                    )
            if match.start() > MAX_HEAD_SIZE:
                raise ProxyError(f"the proxy {self.proxy} sent a response head over {MAX_HEAD_SIZE} bytes")
            head = parse_response_head(bytes(self.buffer[: match.start()]))
            del self.buffer[: match.end()]
            if 100 <= head.status < 200:
                continue
            return head

    def read_body(self, head: _Head, deadline: float) -> tuple[bytes, bool]:
        """Read the body of a refusal. Returns ``(body, reusable)``: whether the connection
        can carry another CONNECT (the body was framed and read whole, keep-alive)."""
        what = f"reading the answer of the proxy {self.proxy}"
        headers = head.headers
        tokens = {
            token.strip().lower()
            for name in ("Connection", "Proxy-Connection")
            for value in headers.get_all(name)
            for token in value.split(",")
        }
        keep_alive = "keep-alive" in tokens if head.version < (1, 1) else "close" not in tokens
        if head.status in (204, 304):
            return b"", keep_alive and not self.eof
        transfer = ",".join(headers.get_all("Transfer-Encoding")).lower()
        if transfer:
            if transfer.split(",")[-1].strip() != "chunked":
                body, _ = self._read_until_close(deadline)
                return body, False
            return self._read_chunked(deadline, what, keep_alive)
        lengths = {v.strip() for v in headers.get_all("Content-Length")}
        if lengths:
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise ProxyError(f"the proxy {self.proxy} sent an invalid Content-Length")
            length = int(next(iter(lengths)))
            wanted = min(length, MAX_BODY_SIZE)
            while len(self.buffer) < wanted and self.fill(deadline, what):
                pass
            body = bytes(self.buffer[:wanted])
            del self.buffer[:wanted]
            complete = len(body) == length
            return body, keep_alive and complete and not self.eof
        body, _ = self._read_until_close(deadline)
        return body, False

    def _read_until_close(self, deadline: float) -> tuple[bytes, bool]:
        short = min(deadline, time.monotonic() + _UNFRAMED_BODY_WAIT)
        try:
            while len(self.buffer) < MAX_BODY_SIZE and self.fill(short, "reading a body"):
                pass
        except (ConnectTimeout, ProxyError):
            pass
        body = bytes(self.buffer[:MAX_BODY_SIZE])
        self.buffer.clear()
        return body, False

    def _read_chunked(self, deadline: float, what: str, keep_alive: bool) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            while b"\n" not in self.buffer:
                if len(self.buffer) > 4096 or not self.fill(deadline, what):
                    return bytes(body[:MAX_BODY_SIZE]), False
            line, _, _ = self.buffer.partition(b"\n")
            del self.buffer[: len(line) + 1]
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return bytes(body[:MAX_BODY_SIZE]), False
            if size == 0:
                # Trailers, then the blank line.
                while True:
                    while b"\n" not in self.buffer:
                        if len(self.buffer) > 4096 or not self.fill(deadline, what):
                            return bytes(body[:MAX_BODY_SIZE]), False
                    trailer, _, _ = self.buffer.partition(b"\n")
                    del self.buffer[: len(trailer) + 1]
                    if not trailer.strip():
                        return bytes(body[:MAX_BODY_SIZE]), keep_alive and not self.eof
            if len(body) + size > MAX_BODY_SIZE:
                return bytes(body[:MAX_BODY_SIZE]), False
            while len(self.buffer) < size + 2:
                if not self.fill(deadline, what):
                    return bytes(body[:MAX_BODY_SIZE]), False
            body += self.buffer[:size]
            del self.buffer[:size]
            if self.buffer[:2] == b"\r\n":
                del self.buffer[:2]
            elif self.buffer[:1] == b"\n":
                del self.buffer[:1]
            else:
                return bytes(body[:MAX_BODY_SIZE]), False


def _proxy_ssl_context(options: Any) -> ssl.SSLContext:
    request_options: Mapping[str, Any] = getattr(options, "request_options", None) or {}
    verify = request_options.get("proxy_verify")
    if verify is None:
        verify = getattr(options, "verify", True)
    cert = request_options.get("proxy_cert")
    from ..transport.tls import make_ssl_context

    return make_ssl_context(verify, cert, {})


def _socket_options(options: Any) -> list[tuple[int, int, Any]]:
    opts = list(getattr(options, "socket_options", None) or [])
    if getattr(options, "disable_nagle_algorithm", True) and not any(
        o[0] == socket.IPPROTO_TCP and o[1] == socket.TCP_NODELAY for o in opts
    ):
        opts.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
    return opts


def _open_proxy_socket(
    proxy: ProxyURL,
    deadline: float,
    options: Any,
    on_socket: Callable[[Any], None] | None = None,
) -> socket.socket:
    """TCP to the proxy through urllib3, then TLS for ``https://`` proxies.

    The TLS layer is added here rather than by urllib3's HTTPSConnection so that the TLS
    socket can be handed to ``on_socket`` before its handshake (``abort()`` can then shut
    it down; wrapping detaches the plain socket).
    """
    timeout = _remaining(deadline, f"connecting to the proxy {proxy}")
    common: dict[str, Any] = {
        "timeout": timeout,
        "source_address": getattr(options, "source_address", None),
        "socket_options": _socket_options(options),
    }
    conn = HTTPConnection(proxy.host, proxy.port, **common)
    try:
        return _connect_to_proxy(conn, proxy, deadline, options, on_socket)
    except NameResolutionError as exc:
        raise ProxyError(f"cannot resolve the proxy host {proxy.host!r}") from exc
    except NewConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, TimeoutError):
            raise ConnectTimeout(f"timed out connecting to the proxy {proxy}") from exc
        reason = getattr(cause, "strerror", None) or cause or exc
        raise ProxyError(f"cannot connect to the proxy {proxy}: {reason}") from exc
    except (ConnectTimeoutError, TimeoutError) as exc:
        raise ConnectTimeout(f"timed out connecting to the proxy {proxy}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise ProxyError(
            f"the TLS certificate of the proxy {proxy} could not be verified: "
            f"{exc.verify_message or exc.reason}"
        ) from exc
    except ssl.CertificateError as exc:
        raise ProxyError(f"the TLS certificate of the proxy {proxy} does not match: {exc}") from exc
    except ssl.SSLError as exc:
        raise ProxyError(f"the TLS handshake with the proxy {proxy} failed: {exc.reason or exc}") from exc
    except (HTTPError, OSError) as exc:
        raise ProxyError(f"cannot connect to the proxy {proxy}: {exc}") from exc


def _connect_to_proxy(
    conn: HTTPConnection,
    proxy: ProxyURL,
    deadline: float,
    options: Any,
    on_socket: Callable[[Any], None] | None,
) -> socket.socket:
    """The steps of :func:`_open_proxy_socket`; closes the socket if one fails."""
    conn.connect()
    sock: Any = conn.sock
    conn.sock = None  # the socket is ours now
    assert sock is not None
    try:
        if on_socket is not None:
            on_socket(sock)
        if proxy.is_tls:
            sock = _proxy_ssl_context(options).wrap_socket(
                sock, server_hostname=proxy.host, do_handshake_on_connect=False
            )
            if on_socket is not None:
                on_socket(sock)
            sock.settimeout(_remaining(deadline, f"connecting to the proxy {proxy}"))
            sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return sock  # type: ignore[no-any-return]


def _has_authorization(headers: Iterable[tuple[str, str]]) -> bool:
    return any(name.lower() == "proxy-authorization" for name, _ in headers)


def _peer_certificate(sock: Any) -> bytes | None:
    """The DER certificate of an ``https://`` proxy (for channel binding), else ``None``."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        return sock.getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None


def _fail(proxy: ProxyURL, authority: str, head: _Head, body: bytes, why: str = "") -> ProxyError:
    response = Response(
        head.status, head.reason, head.headers, body, f"HTTP/{head.version[0]}.{head.version[1]}"
    )
    status = f"{head.status} {head.reason}".strip()
    if head.status == 407:
        message = f"the proxy {proxy} refused CONNECT to {authority}: {status}"
        if why:
            message += f" ({why})"
        return ProxyAuthenticationRequired(message, response=response)
    return ProxyError(f"the proxy {proxy} refused CONNECT to {authority}: {status}", response=response)


def open_http_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    *,
    deadline: float,
    options: Any,
    on_socket: Callable[[Any], None] | None = None,
) -> Any:
    """Open a CONNECT tunnel to ``host:port`` through an ``http://`` or ``https://`` proxy.

    Returns the socket (an ``ssl.SSLSocket`` for an ``https://`` proxy), or a
    :class:`ReplayStream` over it when the proxy sent bytes past its ``200`` answer.

    Raises:
        ProxyAuthenticationRequired: 407, and the credentials (if any) were refused.
        ProxyError: the proxy is unreachable, refused, or answered something that is not
            HTTP; ``.response`` holds the answer when there was one.
        ConnectTimeout: ``deadline`` passed.
        ValueError: ``proxy_headers`` holds a bad name or a value with CR/LF.
    """
    request_options: Mapping[str, Any] = getattr(options, "request_options", None) or {}
    extra = _header_items(request_options.get("proxy_headers"))
    authority = connect_authority(host, port)
    conn: _ProxyConnection | None = None
    authenticator: Authenticator | None = None
    authorization: str | None = None
    # A scheme this proxy accepted before is answered at once (saves the 407 round trip);
    # a 407 to that preemptive value falls back to the normal challenge flow, once.
    preemptive = True
    try:
        for _attempt in range(MAX_ATTEMPTS):
            if conn is None:
                conn = _ProxyConnection(_open_proxy_socket(proxy, deadline, options, on_socket), proxy)
            if preemptive and authenticator is None and not _has_authorization(extra):
                found = preemptive_authenticator(proxy, authority, _peer_certificate(conn.sock))
                if found is not None:
                    authenticator, authorization = found[0], found[1].value
                else:
                    preemptive = False
            logger.debug(
                "CONNECT %s through %s%s",
                authority,
                proxy,
                f" ({authenticator.name} authentication)" if authenticator else "",
            )
            conn.send(build_connect_request(authority, extra, authorization), deadline)
            head = conn.read_head(deadline)
            logger.debug("proxy %s answered %d %s", proxy, head.status, head.reason)
            if 200 <= head.status < 300:
                if authenticator is not None:
                    remember_scheme(proxy, authenticator)
                sock, leftover = conn.sock, bytes(conn.buffer)
                conn = None
                if leftover:
                    return ReplayStream(sock, leftover)
                return sock
            body, reusable = conn.read_body(head, deadline)
            if head.status != 407:
                raise _fail(proxy, authority, head, body)
            challenges = parse_challenges(head.headers.get_all("Proxy-Authenticate"))
            if preemptive and authenticator is not None:
                preemptive = False
                if not continues_handshake(authenticator, challenges):
                    logger.debug("proxy %s refused the remembered %s: back to its 407", proxy, authenticator.name)
                    forget_proxy_schemes(proxy)
                    authenticator = None
            if authenticator is None:
                authenticator, why = choose_authenticator(
                    challenges,
                    username=proxy.username,
                    password=proxy.password,
                    proxy_host=proxy.host,
                    authority=authority,
                    proxy_cert=_peer_certificate(conn.sock),
                )
                if authenticator is None:
                    raise _fail(proxy, authority, head, body, why)
            step = authenticator.step(challenges)
            if step is None:
                raise _fail(
                    proxy,
                    authority,
                    head,
                    body,
                    f"{authenticator.name} credentials refused",
                )
            if not reusable:
                if step.same_connection:
                    raise _fail(
                        proxy,
                        authority,
                        head,
                        body,
                        f"the proxy closed the connection during the {authenticator.name} handshake",
                    )
                conn.close()
                conn = None
            authorization = step.value
        raise ProxyError(f"the proxy {proxy} kept asking for authentication")
    finally:
        if conn is not None:
            conn.close()
