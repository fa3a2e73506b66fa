"""Proxies: which one a connection uses, and the tunnel through it.

* :func:`select_proxy`: ``request_options["proxy"]``, then ``proxies=``, then (with
  ``trust_env``) the environment, with ``NO_PROXY`` exemptions;
  :func:`select_candidates`: the ordered list to try, from a PAC file (``proxy/pac.py``)
  when ``proxies={"pac": URL}``.
* :func:`open_tunnel`: a stream connected *through* the proxy to the target (HTTP CONNECT
  with Negotiate/NTLM/Digest/Basic authentication, or SOCKS4/4a/5/5h via PySocks).
* :func:`wrap_tls_in_tls`: the target's TLS inside the TLS to an ``https://`` proxy.

urllib3 opens the connections to HTTP proxies; PySocks is imported only by ``socks.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .selection import no_proxy_matches, select_candidates, select_proxy
from .streams import ReplayStream, Stream, TLSInTLSStream, wrap_tls_in_tls
from .tunnel import ProxyResponse
from .url import ProxyURL, parse_proxy_url, redact_url

__all__ = [
    "ProxyResponse",
    "ProxyURL",
    "ReplayStream",
    "Stream",
    "TLSInTLSStream",
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
    deadline: float,
    options: Any,
    on_socket: Callable[[Any], None] | None = None,
) -> Any:
    """Return a stream connected through ``proxy`` to ``host:port``.

    For an ``https://`` proxy the stream is TLS to the proxy (an ``ssl.SSLSocket``, or a
    :class:`ReplayStream` over one): the target's TLS then goes through
    :func:`wrap_tls_in_tls`. For the others it is a plain socket (or a ``ReplayStream``).

    Args:
        proxy: from :func:`select_proxy`.
        host: the target host (an IPv6 address with or without brackets).
        port: the target port.
        deadline: a ``time.monotonic()`` instant bounding the whole step.
        options: the ``TransportOptions`` (``verify``, ``request_options`` with
            ``proxy_headers``/``proxy_verify``, ``source_address``, ``socket_options``,
            ``disable_nagle_algorithm``).
        on_socket: called with each socket as soon as it exists (so an ``abort()`` from
            another thread can close it).

    Raises:
        ProxyAuthenticationRequired, ProxyError, ConnectTimeout, ConnectFailed; ValueError
        for a malformed ``proxy_headers``.
    """
    if proxy.is_socks:
        from .socks import open_socks_tunnel

        return open_socks_tunnel(proxy, host, port, deadline=deadline, options=options, on_socket=on_socket)
    from .tunnel import open_http_tunnel

    return open_http_tunnel(proxy, host, port, deadline=deadline, options=options, on_socket=on_socket)


def needs_tls_in_tls(stream: Any) -> bool:
    """Whether the target's TLS over ``stream`` must go through :func:`wrap_tls_in_tls`
    (anything but a plain ``socket.socket``: TLS to the proxy, or a :class:`ReplayStream`)."""
    import socket
    import ssl

    return isinstance(stream, ssl.SSLSocket) or not isinstance(stream, socket.socket)
