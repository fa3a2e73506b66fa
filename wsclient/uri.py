"""Parsing of ``ws://`` and ``wss://`` URLs into a small frozen value."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from .exceptions import InvalidURL

__all__ = ["WSURI", "parse_uri"]


@dataclass(frozen=True)
class WSURI:
    """A parsed WebSocket URL.

    ``host`` has no brackets and is ASCII (IDNA-encoded); ``resource`` is path plus query.
    """

    secure: bool
    host: str
    port: int
    resource: str
    user_info: tuple[str, str] | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.secure else "ws"

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def host_header(self) -> str:
        """The value of the ``Host`` header: the port only when it is not the default."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port`` with brackets around IPv6 hosts (for CONNECT)."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.resource}"


def parse_uri(url: str) -> WSURI:
    """Parse a WebSocket URL.

    Raises:
        InvalidURL: the URL is not a string, has another scheme, no host, a bad port,
            a fragment, or characters that cannot go on the request line.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")
    if any(c in url for c in "\r\n\x00 \t"):
        raise InvalidURL(f"the URL {url!r} contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidURL(f"{url!r} is not a WebSocket URL: the scheme must be ws:// or wss://")
    if parts.fragment or url.endswith("#"):
        raise InvalidURL(f"{url!r}: a WebSocket URL must not have a fragment")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"{url!r} has no host")
    secure = scheme == "wss"
    if port is None:
        port = 443 if secure else 80
    elif port == 0:
        raise InvalidURL(f"{url!r}: port 0 is not a valid port")
    if ":" in host:
        try:
            host = ipaddress.IPv6Address(host.split("%", 1)[0]).compressed + (
                "%" + host.split("%", 1)[1] if "%" in host else ""
            )
        except ValueError as exc:
            raise InvalidURL(f"{url!r}: bad IPv6 address {host!r}") from exc
    else:
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InvalidURL(f"{url!r}: host {host!r} cannot be IDNA-encoded") from exc
    path = parts.path or "/"
    resource = path + ("?" + parts.query if parts.query else "")
    try:
        resource.encode("ascii")
    except UnicodeEncodeError:
        resource = urllib.parse.quote(resource, safe="/?&=%:@!$'()*+,;~-._")
    user_info = None
    if parts.username is not None:
        user_info = (
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password or ""),
        )
    return WSURI(secure, host, port, resource, user_info)
