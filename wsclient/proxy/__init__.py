"""Proxies: which one a connection uses, and the tunnel through it.

* :func:`select_proxy`: ``request_options["proxy"]``, then ``proxies=``, then (with
  ``trust_env``) the environment and the OS settings, with ``NO_PROXY`` exemptions; a
  :class:`ProxySelection` with the candidates in order and why.
* :func:`open_tunnel`: a stream connected *through* the proxy to the target (HTTP CONNECT
  with Negotiate/NTLM/Digest/Basic authentication, or SOCKS4/4a/5/5h via PySocks).
* :func:`wrap_tls_in_tls`: the target's TLS inside the TLS to an ``https://`` proxy.

This package depends on ``wsclient._net`` and never on ``wsclient.transport`` (which uses
it): PySocks is imported only by ``socks.py``.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from .._net import Deadline, OnSocket, Trace, TransportOptions
from .selection import ProxySelection, check_proxies_keys, no_proxy_matches, select_proxy
from .streams import ReplayStream, Stream, TLSInTLSStream, wrap_tls_in_tls
from .tunnel import ProxyResponse, open_http_tunnel
from .url import ProxyURL, parse_proxy_url, redact_url

__all__ = [
    "ProxyResponse",
    "ProxySelection",
    "ProxyURL",
    "ReplayStream",
    "Stream",
    "TLSInTLSStream",
    "check_proxies_keys",
    "needs_tls_in_tls",
    "no_proxy_matches",
    "open_tunnel",
    "parse_proxy_url",
    "redact_url",
    "select_candidates",
    "select_proxy",
    "wrap_tls_in_tls",
]


def open_tunnel(
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
    """Return a stream connected through ``proxy`` to ``host:port``.

    For an ``https://`` proxy (``proxy_tls`` is then the context for the TLS to the proxy)
    the stream is TLS to the proxy (an ``ssl.SSLSocket``, or a :class:`ReplayStream` over
    one): the target's TLS then goes through :func:`wrap_tls_in_tls`. For the others it is
    a plain socket (or a ``ReplayStream``). ``on_socket`` is called with each socket as soon
    as it exists; ``trace`` with each stage that ends ("dns", "tcp", "proxy_tls",
    "proxy_connect"); ``attempt_timeout`` bounds reaching the proxy (a failover share).

    Raises:
        ProxyAuthenticationRequired, ProxyError, ConnectTimeout, ConnectFailed; an
        ``Unreachable`` one when the proxy could not be reached at all.
    """
    if proxy.is_socks:
        from .socks import open_socks_tunnel

        return open_socks_tunnel(
            proxy, host, port, deadline=deadline, options=options, on_socket=on_socket, trace=trace,
            attempt_timeout=attempt_timeout,
        )
    return open_http_tunnel(
        proxy, host, port, deadline=deadline, options=options, proxy_tls=proxy_tls, on_socket=on_socket,
        trace=trace, attempt_timeout=attempt_timeout,
    )


def needs_tls_in_tls(stream: Any) -> bool:
    """Whether the target's TLS over ``stream`` must go through :func:`wrap_tls_in_tls`
    (anything but a plain ``socket.socket``: TLS to the proxy, or a :class:`ReplayStream`)."""
    return isinstance(stream, ssl.SSLSocket) or not isinstance(stream, socket.socket)
