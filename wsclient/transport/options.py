"""``request_options`` parsed once, at the edge, into the typed :class:`TransportOptions`."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from .._net import TransportOptions
from ..handshake import header_pairs
from ..proxy import check_proxies_keys

__all__ = ["REQUEST_OPTION_KEYS", "TransportOptions", "parse_request_options"]

#: The keys of ``request_options`` (WebSocket-Node's ``requestOptions``), plus the keyword
#: arguments of ``wsclient.connect`` that travel with them.
REQUEST_OPTION_KEYS = frozenset(
    {
        "proxy", "proxy_headers", "proxy_verify", "proxy_cert", "timeout", "source_address",
        "socket_options", "server_hostname", "ssl_context", "proxies", "verify", "cert", "trust_env",
    }
)


def parse_request_options(
    request_options: Mapping[str, Any] | None,
    *,
    tls_options: Mapping[str, Any],
    disable_nagle_algorithm: bool,
    default_timeout: float | None,
) -> TransportOptions:
    """Validate ``request_options`` and build the typed options of one opening.

    Raises:
        TypeError: an unknown key (named in the message).
        ValueError: a ``proxy_headers`` name or value that cannot be sent, or an unknown
            ``proxies`` key.
    """
    ro = dict(request_options or {})
    unknown = sorted(set(ro) - REQUEST_OPTION_KEYS, key=str)
    if unknown:
        raise TypeError(f"unknown request_options key(s): {', '.join(map(repr, unknown))}")
    proxies = ro.get("proxies")
    if proxies is not None:
        check_proxies_keys(proxies)
    ssl_context = ro.get("ssl_context") or tls_options.get("ssl_context")
    return TransportOptions(
        verify=ro.get("verify", True),
        cert=ro.get("cert"),
        tls_options=tls_options,
        proxies=proxies,
        trust_env=ro.get("trust_env", True),
        proxy=ro.get("proxy"),
        proxy_headers=tuple(header_pairs(ro.get("proxy_headers"), what="proxy header", allow_bytes=True)),
        proxy_verify=ro.get("proxy_verify"),
        proxy_cert=ro.get("proxy_cert"),
        timeout=ro.get("timeout", default_timeout),
        disable_nagle_algorithm=disable_nagle_algorithm,
        source_address=ro.get("source_address"),
        socket_options=tuple(ro.get("socket_options") or ()),
        server_hostname=ro.get("server_hostname") or tls_options.get("server_hostname"),
        ssl_context=ssl_context if isinstance(ssl_context, ssl.SSLContext) else None,
    )
