"""The options that the transport needs to open a stream (built by the client)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TransportOptions"]


@dataclass(frozen=True)
class TransportOptions:
    """Everything ``open_stream`` needs besides the URL and the deadline.

    ``request_options`` is the user's dict as given (WebSocket-Node's ``requestOptions``); the other
    fields are resolved from it and from ``wsclient.connect``'s keyword arguments.
    """

    verify: bool | str | ssl.SSLContext = True
    cert: str | tuple[str, ...] | None = None
    tls_options: Mapping[str, Any] = field(default_factory=dict)
    proxies: Mapping[str, str] | None = None
    trust_env: bool = True
    request_options: Mapping[str, Any] = field(default_factory=dict)
    disable_nagle_algorithm: bool = True
    source_address: tuple[str, int] | None = None
    socket_options: Sequence[tuple[int, int, Any]] | None = None
    server_hostname: str | None = None
    ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        # Proxy URLs may carry credentials: never show them.
        return (
            f"TransportOptions(verify={self.verify!r}, proxies={'<set>' if self.proxies else self.proxies},"
            f" trust_env={self.trust_env})"
        )
