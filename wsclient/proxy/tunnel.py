"""HTTP CONNECT tunnels through ``http://`` and ``https://`` proxies, with authentication.

The CONNECT request is written and the proxy's answer read (by the shared HTTP/1.1 reader)
here, so that every refusal becomes a precise exception and the 407 challenge/response
(Negotiate, NTLM, Digest, Basic) runs on the same connection.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

from .._net import (
    Deadline,
    OnSocket,
    Trace,
    TransportOptions,
    UnreachableProxy,
    UnreachableTimeout,
    map_errors,
    open_tcp,
    tcp_socket_options,
    tls_info,
)
from ..exceptions import ConnectFailed, ConnectTimeout, ProxyAuthenticationRequired, ProxyError
from ..http11 import HTTPParseError, Response, ResponseReader
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

__all__ = ["ProxyResponse", "build_connect_request", "connect_authority", "open_http_tunnel"]

logger = logging.getLogger("wsclient.proxy")

#: CONNECT attempts on one tunnel (the first, then the authentication legs).
MAX_ATTEMPTS = 6
#: How long to wait for the end of a refusal's body once its head arrived (a body without a
#: length ends when the proxy closes); the refusal is reported after that in any case.
_BODY_WAIT = 2.0
_RECV_SIZE = 64 * 1024

#: A proxy's answer to CONNECT, as ``ProxyError.response`` carries it: the same type as the
#: server's answer in ``InvalidStatus.response``.
ProxyResponse = Response


def connect_authority(host: str, port: int) -> str:
    """The CONNECT request target: ``host:port``, an IPv6 address in brackets."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_connect_request(
    authority: str,
    proxy_headers: Iterable[tuple[str, str]] = (),
    authorization: str | None = None,
) -> bytes:
    """The CONNECT request bytes.

    ``proxy_headers`` (already validated) come after ``Host`` and may replace it;
    ``authorization`` (when given) replaces any ``Proxy-Authorization`` among them.
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
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connect_proxy(
    proxy: ProxyURL,
    deadline: Deadline,
    options: TransportOptions,
    proxy_tls: ssl.SSLContext | None,
    on_socket: OnSocket | None,
    trace: Trace | None,
    first: Deadline | None,
) -> Any:
    """TCP to the proxy, then TLS for an ``https://`` proxy (the socket goes to
    ``on_socket`` before the handshake, so ``abort()`` can shut it down). ``first``, while
    the proxy has not answered yet, bounds both: silence or a close is ``Unreachable``."""
    sock: Any = open_tcp(
        proxy.host,
        proxy.port,
        first or deadline,
        what=f"the proxy {proxy}",
        proxy=True,
        source_address=options.source_address,
        socket_options=tcp_socket_options(options.socket_options, options.disable_nagle_algorithm),
        on_socket=on_socket,
        trace=trace,
    )
    if not proxy.is_tls:
        return sock
    if proxy_tls is None:
        sock.close()
        raise ValueError("an https:// proxy needs the proxy_tls context")
    silent: type[ConnectFailed] = ConnectTimeout if first is None else UnreachableTimeout
    closed: type[ConnectFailed] = ProxyError if first is None else UnreachableProxy

    def hung_up(exc: BaseException) -> ConnectFailed:
        return closed(f"the proxy {proxy} closed the connection during the TLS handshake")

    started = time.monotonic()
    try:
        with map_errors(
            {
                ssl.SSLCertVerificationError: lambda e: ProxyError(
                    f"the TLS certificate of the proxy {proxy} could not be verified: {e.verify_message or e.reason}"
                ),
                TimeoutError: lambda e: silent(f"timed out in the TLS handshake with the proxy {proxy}"),
                ssl.SSLEOFError: hung_up,
                ssl.SSLZeroReturnError: hung_up,
                ConnectionResetError: hung_up,
                ssl.SSLError: lambda e: ProxyError(f"the TLS handshake with the proxy {proxy} failed: {e.reason or e}"),
                OSError: lambda e: ProxyError(f"the TLS handshake with the proxy {proxy} failed: {e}"),
            }
        ):
            sock = proxy_tls.wrap_socket(sock, server_hostname=proxy.host, do_handshake_on_connect=False)
            if on_socket is not None:
                on_socket(sock)
            sock.settimeout((first or deadline).timeout(f"in the TLS handshake with the proxy {proxy}"))
            sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    if trace is not None:
        trace("proxy_tls", tls_info(sock, time.monotonic() - started))
    return sock


def _exchange(
    sock: Any, proxy: ProxyURL, request: bytes, reader: ResponseReader, deadline: Deadline, first: Deadline | None
) -> Response:
    """Send one CONNECT and read the proxy's answer. ``first`` is given while this proxy has
    not answered anything yet: no byte by then, or a close without one, is ``Unreachable``."""
    what = f"waiting for the proxy {proxy} to answer CONNECT"
    with map_errors(
        {
            TimeoutError: lambda e: ConnectTimeout(f"timed out {what}"),
            HTTPParseError: lambda e: ProxyError(f"bad answer from the proxy {proxy} to CONNECT: {e}"),
            OSError: lambda e: ProxyError(f"the connection to the proxy {proxy} failed: {e}"),
        }
    ):
        sock.settimeout(deadline.timeout(f"sending CONNECT to the proxy {proxy}"))
        sock.sendall(request)
        body_deadline: Deadline | None = None
        while True:
            if body_deadline is None and reader.has_head:
                body_deadline = deadline.shorter(_BODY_WAIT)
            try:
                sock.settimeout((body_deadline or first or deadline).timeout(what))
                data = sock.recv(_RECV_SIZE)
            except (TimeoutError, ConnectTimeout) as exc:
                if first is not None:
                    raise UnreachableTimeout(f"timed out {what}") from exc
                if not reader.has_head:
                    raise
                data = b""  # a refusal whose body did not end in time: report what came
            except ConnectionResetError:
                data = b""
            if first is not None and not data:
                raise UnreachableProxy(f"the proxy {proxy} closed the connection without answering CONNECT")
            first = None
            response = reader.receive_data(data) if data else reader.receive_eof()
            if response is not None:
                return response


def _fail(proxy: ProxyURL, authority: str, response: Response, why: str = "") -> ProxyError:
    status = f"{response.status} {response.reason}".strip()
    message = f"the proxy {proxy} refused CONNECT to {authority}: {status}"
    if response.status == 407:
        return ProxyAuthenticationRequired(message + (f" ({why})" if why else ""), response=response)
    return ProxyError(message, response=response)


def open_http_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    *,
    deadline: Deadline,
    options: TransportOptions,
    proxy_tls: ssl.SSLContext | None = None,
    on_socket: OnSocket | None = None,
    trace: Trace | None = None,
    attempt_timeout: float | None = None,
) -> Any:
    """Open a CONNECT tunnel to ``host:port`` through an ``http://`` or ``https://`` proxy.

    Returns the socket (an ``ssl.SSLSocket`` for an ``https://`` proxy), or a
    :class:`ReplayStream` over it when the proxy sent bytes past its ``200`` answer.

    Raises:
        ProxyAuthenticationRequired: 407, and the credentials (if any) were refused.
        ProxyError: the proxy is unreachable, refused, or answered something that is not
            HTTP; ``.response`` holds the answer when there was one.
        ConnectTimeout: ``deadline`` passed.
    """
    authority = connect_authority(host, port)
    sock: Any = None
    authenticator: Authenticator | None = None
    authorization: str | None = None
    offered: list[str] = []
    started = time.monotonic()
    # A scheme this proxy accepted before is answered at once (saves the 407 round trip);
    # a 407 to that preemptive value falls back to the normal challenge flow, once.
    preemptive = not any(name.lower() == "proxy-authorization" for name, _ in options.proxy_headers)
    # Until this proxy answers, it has its share of the time (TCP, TLS, the first byte of
    # its answer): one that accepts and then stays silent, or closes without a word, is as
    # good as unreachable, and the opening moves on to the next candidate.
    first: Deadline | None = deadline if attempt_timeout is None else deadline.shorter(attempt_timeout)
    try:
        for _attempt in range(MAX_ATTEMPTS):
            if sock is None:
                sock = _connect_proxy(proxy, deadline, options, proxy_tls, on_socket, trace, first)
                started = time.monotonic()
            if preemptive and authenticator is None:
                found = preemptive_authenticator(proxy, authority, _peer_certificate(sock), deadline)
                if found is not None:
                    authenticator, authorization = found[0], found[1].value
                else:
                    preemptive = False
            used = f" ({authenticator.name} authentication)" if authenticator else ""
            logger.debug("CONNECT %s through %s%s", authority, proxy, used)
            reader = ResponseReader(no_body=lambda status: 200 <= status < 300, skip_interim=True)
            request = build_connect_request(authority, options.proxy_headers, authorization)
            response = _exchange(sock, proxy, request, reader, deadline, first)
            first = None
            logger.debug("proxy %s answered %d %s", proxy, response.status, response.reason)
            if 200 <= response.status < 300:
                if authenticator is not None:
                    remember_scheme(proxy, authenticator)
                if trace is not None:
                    info = {
                        "status": response.status,
                        "schemes_offered": offered,
                        "scheme_used": authenticator.name if authenticator else None,
                        "seconds": time.monotonic() - started,
                    }
                    trace("proxy_connect", info)
                stream, sock = sock, None
                return ReplayStream(stream, reader.trailing_data) if reader.trailing_data else stream
            if response.status != 407:
                raise _fail(proxy, authority, response)
            challenges = parse_challenges(response.headers.get_all("Proxy-Authenticate"))
            offered = offered or [c.scheme for c in challenges]
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
                    proxy_cert=_peer_certificate(sock),
                    deadline=deadline,
                )
                if authenticator is None:
                    raise _fail(proxy, authority, response, why)
            step = authenticator.step(challenges)
            if step is None:
                raise _fail(proxy, authority, response, f"{authenticator.name} credentials refused")
            if not reader.reusable:
                if step.same_connection:
                    why = f"the proxy closed the connection during the {authenticator.name} handshake"
                    raise _fail(proxy, authority, response, why)
                sock.close()
                sock = None
            authorization = step.value
        raise ProxyError(f"the proxy {proxy} kept asking for authentication")
    finally:
        if sock is not None:
            _close(sock)


def _peer_certificate(sock: Any) -> bytes | None:
    """The DER certificate of an ``https://`` proxy (for channel binding), else ``None``."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        return sock.getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
