"""``wsclient.connect()``: the requests-style front door, a few lines over WebSocketClient."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .client import DEFAULT_TIMEOUT, WebSocketClient
from .connection import WebSocketConnection

__all__ = ["connect"]


def connect(
    url: str,
    *,
    subprotocols: Sequence[str] | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    origin: str | None = None,
    proxies: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    verify: bool | str | ssl.SSLContext = True,
    cert: str | tuple[str, ...] | None = None,
    trust_env: bool = True,
    request_options: Mapping[str, Any] | None = None,
    **config: Any,
) -> WebSocketConnection:
    """Open a WebSocket connection and return it once it is open.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        subprotocols: subprotocols to offer; the chosen one is ``ws.subprotocol``.
        headers: extra request headers.
        origin: ``Origin`` header value (not sent when None).
        proxies: ``{"ws": url, "wss": url, "all": url, "no_proxy": "..."}``; when given
            (even empty) the environment is not consulted.
        timeout: seconds for the whole opening (TCP, proxy, TLS and handshake, and every
            redirect hop together).
        verify: True (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR`` when ``trust_env`` and set, else certifi's roots), ``"system"``
            (the OS trust store, extra ``python-wsclient[truststore]``), False, a CA bundle file or
            directory, or an SSLContext.
        cert: client certificate: path, ``(cert, key)`` or ``(cert, key, password)``.
        trust_env: honour ``WS(S)_PROXY``, ``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
            the CA variables above and ``SSLKEYLOGFILE``.
        request_options: further transport options (see ``WebSocketClient.connect``).
        **config: any :class:`~wsclient.ClientConfig` option.

    Returns:
        The open :class:`~wsclient.WebSocketConnection` (a context manager).

    Raises:
        InvalidURL: not a ws:// or wss:// URL, or one with control characters or a bad host.
        ValueError: a header, proxy header, subprotocol or origin that cannot be sent
            (raised before any socket is opened).
        ImportError: ``verify="system"`` without truststore installed.
        ConnectFailed: or another subclass, when the opening fails.
    """
    return _connect_with(
        None, url, subprotocols=subprotocols, headers=headers, origin=origin, proxies=proxies,
        timeout=timeout, verify=verify, cert=cert, trust_env=trust_env,
        request_options=request_options, **config,
    )


def _connect_with(
    on_client: Callable[[WebSocketClient], None] | None,
    url: str,
    *,
    subprotocols: Sequence[str] | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    origin: str | None = None,
    proxies: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    verify: bool | str | ssl.SSLContext = True,
    cert: str | tuple[str, ...] | None = None,
    trust_env: bool = True,
    request_options: Mapping[str, Any] | None = None,
    **config: Any,
) -> WebSocketConnection:
    """``connect()``, handing the client to ``on_client`` first (so that reconnect's
    ``stop()`` can abort an opening in progress)."""
    client = WebSocketClient(**config)
    if on_client is not None:
        on_client(client)
    options = dict(request_options or {})
    options.update(proxies=proxies, timeout=timeout, verify=verify, cert=cert, trust_env=trust_env)
    return client.connect(url, subprotocols, origin, headers, options, wait=True)
