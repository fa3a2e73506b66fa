"""Opening the byte stream under a WebSocket: TCP (through urllib3), proxies, TLS.

:func:`open_stream` is the one place where foreign errors (``OSError``, ``ssl.SSLError``,
urllib3's exceptions) become wsclient's ``ConnectFailed`` subclasses.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util.connection import create_connection

from ..exceptions import (
    ConnectFailed,
    ConnectTimeout,
    InvalidURL,
    ProxyAuthenticationRequired,
    TLSError,
    WebSocketError,
)
from ..uri import WSURI
from .options import TransportOptions
from .tls import make_ssl_context

__all__ = ["TransportOptions", "make_ssl_context", "open_stream", "remaining", "translate_error"]

logger = logging.getLogger("wsclient.transport")


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; raises ``ConnectTimeout`` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeout("the opening handshake timed out")
    return left


def translate_error(exc: BaseException, what: str) -> WebSocketError:
    """Map a foreign exception raised while opening to the matching ``ConnectFailed``."""
    if isinstance(exc, WebSocketError):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectTimeoutError)):
        return ConnectTimeout(f"{what}: timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(f"{what}: certificate verification failed: {exc.verify_message or exc}")
    if isinstance(exc, ssl.CertificateError):
        return TLSError(f"{what}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"{what}: TLS error: {exc.reason or exc}")
    if isinstance(exc, (NameResolutionError, socket.gaierror)):
        return ConnectFailed(f"{what}: could not resolve the host name ({exc})")
    if isinstance(exc, LocationParseError):
        return InvalidURL(f"{what}: {exc}")
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return ConnectTimeout(f"{what}: timed out")
        return ConnectFailed(f"{what}: {cause or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed(f"{what}: connection refused")
    if isinstance(exc, OSError):
        return ConnectFailed(f"{what}: {exc.strerror or exc}")
    return ConnectFailed(f"{what}: {exc!r}")


def open_stream(
    uri: WSURI,
    options: TransportOptions,
    deadline: float,
    *,
    on_socket: Callable[[Any], None] | None = None,
) -> Any:
    """Open TCP (directly or through a proxy) and, for ``wss://``, TLS to the target.

    ``on_socket`` is called with each socket as soon as it exists, so that ``abort()`` can
    close it from another thread. Returns a connected stream (socket or TLS socket) in
    blocking mode with no timeout set.

    Raises:
        ConnectFailed: or one of its subclasses; ``__cause__`` is the original error.
    """
    from .. import proxy as proxy_mod

    request_proxy = options.request_options.get("proxy")
    candidates, source = proxy_mod.select_candidates(
        uri,
        proxies=options.proxies,
        trust_env=options.trust_env,
        request_proxy=request_proxy,
        deadline=deadline,
        options=options,
    )
    target = f"{uri.host}:{uri.port}"
    sock: Any = None
    proxy: proxy_mod.ProxyURL | None = None
    try:
        # Candidates come from a PAC answer ("PROXY a; PROXY b; DIRECT"): move to the next
        # one when this one cannot be reached, within the one deadline; a 407 or any answer
        # from a proxy that was reached is final.
        for index, proxy in enumerate(candidates):
            try:
                sock = _open_candidate(uri, proxy, options, deadline, on_socket)
                break
            except (ConnectTimeout, InvalidURL, ProxyAuthenticationRequired, ValueError):
                raise
            except Exception as exc:
                last = index == len(candidates) - 1
                if last or getattr(exc, "response", None) is not None:
                    raise
                logger.debug(
                    "%s (from %s) cannot be reached, trying the next candidate: %s",
                    proxy or "the direct connection",
                    source,
                    exc,
                )
        if on_socket is not None:
            on_socket(sock)
        if uri.secure:
            ctx = options.ssl_context or make_ssl_context(options.verify, options.cert, options.tls_options)
            hostname = (
                options.server_hostname
                or options.tls_options.get("server_hostname")
                or uri.host
            )
            if proxy is not None and proxy_mod.needs_tls_in_tls(sock):  # TLS inside a proxy stream
                sock = proxy_mod.wrap_tls_in_tls(sock, ctx, hostname, deadline)
            else:
                sock.settimeout(remaining(deadline))
                # Register the TLS socket before its handshake: wrapping detaches the
                # plain socket, so abort() must be able to shut this one down.
                sock = ctx.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
                if on_socket is not None:
                    on_socket(sock)
                sock.do_handshake()
            if on_socket is not None:
                on_socket(sock)
        sock.settimeout(None)
        return sock
    except BaseException as exc:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if isinstance(exc, WebSocketError):
            raise
        if not isinstance(exc, Exception):
            raise
        raise translate_error(exc, f"cannot connect to {uri.scheme}://{target}") from exc


def _open_candidate(
    uri: WSURI,
    proxy: Any,
    options: TransportOptions,
    deadline: float,
    on_socket: Callable[[Any], None] | None,
) -> Any:
    """TCP to the target (``proxy`` is ``None``) or a tunnel through ``proxy``."""
    from .. import proxy as proxy_mod

    if proxy is None:
        logger.debug("connecting to %s", uri.authority)
        try:
            return create_connection(
                (uri.host, uri.port),
                timeout=remaining(deadline),
                source_address=options.source_address,
                socket_options=_socket_options(options),
            )
        except WebSocketError:
            raise
        except Exception as exc:
            raise translate_error(exc, f"cannot connect to {uri.scheme}://{uri.host}:{uri.port}") from exc
    logger.debug("connecting to %s through proxy %s", uri.authority, proxy)
    return proxy_mod.open_tunnel(proxy, uri.host, uri.port, deadline=deadline, options=options, on_socket=on_socket)


def _socket_options(options: TransportOptions) -> list[tuple[int, int, Any]]:
    opts = list(options.socket_options or [])
    if options.disable_nagle_algorithm and not any(
        o[0] == socket.IPPROTO_TCP and o[1] == socket.TCP_NODELAY for o in opts
    ):
        opts.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
    return opts
