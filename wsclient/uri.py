"""Parsing of ``ws://`` and ``wss://`` URLs into a small frozen value.

Error messages never repeat the credentials of a URL (:func:`redact_url`), and a URL is
refused as a whole when it holds a control character, so nothing raw reaches the wire.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

from .exceptions import InvalidURL, redact_url

__all__ = ["WSURI", "parse_uri", "redact_url", "validate_host"]

# Any byte below 0x20, 0x7F, and the space: none may appear in a URL (RFC 3986), and
# urlsplit() lets most of them through into the request line or the Host header.
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
# A host name label: letters, digits, hyphen; "_" too, which real internal names use.
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")


@dataclass(frozen=True)
class WSURI:
    """A parsed WebSocket URL.

    ``host`` has no brackets and is ASCII (IDNA-encoded); ``resource`` is path plus query.
    """

    secure: bool
    host: str
    port: int
    resource: str
    #: (user, password) from the URL; never shown by ``repr()``.
    user_info: tuple[str, str] | None = field(default=None, repr=False)

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

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): what decides whether credentials may follow a redirect."""
        return (self.scheme, self.host.lower(), self.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.resource}"


def validate_host(host: str) -> str:
    """Check an ASCII host name (or IPv4 address) label by label; returns it.

    Raises:
        ValueError: an empty label (``a..b``), a label longer than 63 characters or with a
            character a host name cannot hold, or a name longer than 253 characters.
    """
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        raise ValueError(f"host {host!r} is not a valid host name (empty or too long)")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise ValueError(f"host {host!r} is not a valid host name (bad label {label!r})")
    return host


def parse_uri(url: str) -> WSURI:
    """Parse a WebSocket URL.

    Raises:
        InvalidURL: the URL is not a string, has another scheme, no host, a bad port,
            a fragment, or characters that cannot go on the request line.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")
    if "@" in url:  # never keep credentials in a cache
        return _parse(url)
    return _parse_cached(url)


def _parse(url: str) -> WSURI:
    shown = redact_url(url)
    if _BAD_URL_CHARS.search(url):
        raise InvalidURL(f"the URL {shown!r} contains whitespace or control characters")
    detail = None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # urlsplit's message can quote a piece of a password ("Port could not be cast to
        # integer value as 'se'" for "ws://u:se/cret@h"): only show it when there is none.
        detail = str(exc) if "@" not in url else "bad port or credentials"
    if detail is not None:
        # Raised outside the except block: not even __context__ keeps urlsplit's message.
        raise InvalidURL(f"invalid URL {shown!r}: {detail}")
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidURL(f"{shown!r} is not a WebSocket URL: the scheme must be ws:// or wss://")
    if parts.fragment or url.endswith("#"):
        raise InvalidURL(f"{shown!r}: a WebSocket URL must not have a fragment")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"{shown!r} has no host")
    secure = scheme == "wss"
    if port is None:
        port = 443 if secure else 80
    elif port == 0:
        raise InvalidURL(f"{shown!r}: port 0 is not a valid port")
    if ":" in host:
        try:
            host = ipaddress.IPv6Address(host.split("%", 1)[0]).compressed + (
                "%" + host.split("%", 1)[1] if "%" in host else ""
            )
        except ValueError:
            raise InvalidURL(f"{shown!r}: bad IPv6 address {host!r}") from None
    else:
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURL(f"{shown!r}: host {host!r} cannot be IDNA-encoded") from None
        try:
            validate_host(host)
        except ValueError as exc:
            raise InvalidURL(f"{shown!r}: {exc}") from None
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


# A worker reconnects to the same few URLs: parsing one costs about 15 us (urlsplit, the
# host checks), a cache hit 0.1 us. WSURI is frozen, so sharing it is safe; failures are
# not cached (they raise).
_parse_cached = functools.lru_cache(maxsize=64)(_parse)
