"""Opening the byte stream under a WebSocket: the proxy choice, TCP, the tunnel, TLS.

:func:`open_stream` tries the proxy candidates in order within the one deadline; each
boundary maps foreign errors (``OSError``, ``ssl.SSLError``) to wsclient's ``ConnectFailed``
subclasses with :func:`~wsclient._net.map_errors`. Depends on ``wsclient.proxy`` (never the
reverse).
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

from .._net import (
    Deadline,
    OnSocket,
    Trace,
    TransportOptions,
    Unreachable,
    map_errors,
    open_tcp,
    tcp_socket_options,
    tls_info,
)
from ..exceptions import ConnectFailed, ConnectTimeout, ProxyError, TLSError
from ..proxy import ProxyURL, needs_tls_in_tls, redact_url, select_proxy, wrap_tls_in_tls
from ..proxy import open_tunnel as _open_tunnel
from ..proxy.pac import FetchOptions
from ..uri import WSURI
from .options import parse_request_options
from .tls import make_ssl_context, trust_source

__all__ = ["Deadline", "TransportOptions", "make_ssl_context", "open_stream", "parse_request_options"]

logger = logging.getLogger("wsclient.transport")


def _tls_errors(what: str) -> dict[type[BaseException], Any]:
    # ssl.CertificateError is the same class as ssl.SSLCertVerificationError.
    return {
        ssl.SSLCertVerificationError: lambda e: TLSError(
            f"{what}: certificate verification failed: {e.verify_message or e}"
        ),
        TimeoutError: lambda e: ConnectTimeout(f"{what}: timed out in the TLS handshake"),
        ssl.SSLError: lambda e: TLSError(f"{what}: TLS error: {e.reason or e}"),
        OSError: lambda e: TLSError(f"{what}: the connection failed during the TLS handshake: {e.strerror or e}"),
    }


def open_stream(
    uri: WSURI,
    options: TransportOptions,
    deadline: Deadline,
    *,
    on_socket: OnSocket | None = None,
    trace: Trace | None = None,
) -> Any:
    """Open TCP (directly or through a proxy) and, for ``wss://``, TLS to the target.

    The proxy candidates are tried in order: a candidate that cannot be reached (not
    resolvable, refused, silent at TCP) gives way to the next, each getting a fair share of
    the time left; any other failure (a 407, a refusal, TLS) is final. ``on_socket`` is
    called with each socket as soon as it exists, so that ``abort()`` can close it from
    another thread; ``trace(stage, info)`` when each stage ends ("proxy", "dns", "tcp",
    "proxy_tls", "proxy_connect", "tls"). Returns a connected stream in blocking mode with
    no timeout set.

    Raises:
        ConnectFailed: or one of its subclasses; ``__cause__`` is the original error.
    """
    pac_fetch = None
    if options.proxies is not None and "pac" in options.proxies:
        pac_fetch = FetchOptions(
            make_ssl_context=lambda: make_ssl_context(
                options.verify, None, options.tls_options, trust_env=options.trust_env
            )
        )
    selection = select_proxy(
        uri, proxies=options.proxies, trust_env=options.trust_env, request_proxy=options.proxy,
        deadline=deadline, options=pac_fetch,
    )
    if trace is not None:
        first = selection.proxy
        shown = [redact_url(str(c)) if c else None for c in selection.candidates]
        info = {
            "proxy": str(first) if first else None,
            "source": selection.source,
            "candidates": shown,
            "credentials": bool(first and first.has_credentials),
        }
        trace("proxy", info)
    candidates = selection.candidates
    for index, proxy in enumerate(candidates):
        left = len(candidates) - index
        remaining = deadline.remaining()
        share = None if left == 1 or remaining is None else remaining / left
        try:
            return _open_one(uri, proxy, options, deadline, on_socket, trace, share)
        except Unreachable as exc:
            if left == 1:
                raise _public(exc) from exc.__cause__
            logger.debug("%s cannot be reached (%s): trying the next candidate", proxy or "DIRECT", exc)
    raise AssertionError("no proxy candidates")  # select_proxy always gives at least one


def _public(exc: Unreachable) -> ConnectFailed:
    """The public exception for the last unreachable candidate (``Unreachable`` only steers
    the failover inside this module: users see ConnectTimeout, ProxyError or ConnectFailed)."""
    kind: type[ConnectFailed] = ConnectFailed
    if isinstance(exc, ConnectTimeout):
        kind = ConnectTimeout
    elif isinstance(exc, ProxyError):
        kind = ProxyError
    return kind(str(exc))


def _open_one(
    uri: WSURI,
    proxy: ProxyURL | None,
    options: TransportOptions,
    deadline: Deadline,
    on_socket: OnSocket | None,
    trace: Trace | None,
    share: float | None,
) -> Any:
    """One candidate: TCP (or the tunnel), then the target's TLS."""
    target = f"{uri.scheme}://{uri.host}:{uri.port}"
    if proxy is None:
        logger.debug("connecting to %s", target)
        sock = open_tcp(
            uri.host, uri.port, deadline, what=target, source_address=options.source_address,
            socket_options=tcp_socket_options(options.socket_options, options.disable_nagle_algorithm),
            on_socket=on_socket, trace=trace, attempt_timeout=share,
        )
    else:
        logger.debug("connecting to %s through proxy %s", target, proxy)
        proxy_verify = options.verify if options.proxy_verify is None else options.proxy_verify
        proxy_tls = make_ssl_context(proxy_verify, options.proxy_cert, {}, trust_env=options.trust_env) if proxy.is_tls else None
        tunnel_trace = trace
        if trace is not None:

            def tunnel_trace(stage: str, info: dict[str, Any]) -> None:
                if stage == "proxy_tls":
                    info["trust_source"] = trust_source(proxy_verify, options.trust_env)
                trace(stage, info)

        sock = _open_tunnel(
            proxy, uri.host, uri.port, deadline=deadline, options=options, proxy_tls=proxy_tls,
            on_socket=on_socket, trace=tunnel_trace, attempt_timeout=share,
        )
    try:
        if uri.secure:
            sock = _start_tls(uri, sock, proxy is not None, options, deadline, on_socket, trace, target)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


def _start_tls(
    uri: WSURI,
    sock: Any,
    tunnelled: bool,
    options: TransportOptions,
    deadline: Deadline,
    on_socket: OnSocket | None,
    trace: Trace | None,
    target: str,
) -> Any:
    """The target's TLS handshake over ``sock`` (inside the proxy's TLS when needed)."""
    ctx = options.ssl_context or make_ssl_context(options.verify, options.cert, options.tls_options, trust_env=options.trust_env)
    hostname = options.server_hostname or uri.host
    started = time.monotonic()
    if tunnelled and needs_tls_in_tls(sock):
        sock = wrap_tls_in_tls(sock, ctx, hostname, deadline)
    else:
        with map_errors(_tls_errors(f"cannot connect to {target}")):
            sock.settimeout(deadline.timeout(f"in the TLS handshake with {target}"))
            # Register the TLS socket before its handshake: wrapping detaches the plain
            # socket, so abort() must be able to shut this one down.
            tls = ctx.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
            try:
                if on_socket is not None:
                    on_socket(tls)
                tls.do_handshake()
            except BaseException:
                tls.close()
                raise
            sock = tls
    if on_socket is not None:
        on_socket(sock)
    if trace is not None:
        info = tls_info(sock, time.monotonic() - started)
        info["trust_source"] = trust_source(options.ssl_context or options.verify, options.trust_env)
        trace("tls", info)
    return sock
