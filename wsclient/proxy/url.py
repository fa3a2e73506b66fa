"""Proxy URLs: parsing into :class:`ProxyURL`, a frozen value that never shows its password."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field

from ..exceptions import InvalidURL

__all__ = ["DEFAULT_PORTS", "SCHEMES", "SOCKS_SCHEMES", "ProxyURL", "parse_proxy_url", "redact_url"]

#: The proxy schemes wsclient speaks, with the port used when the URL gives none.
DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}
SCHEMES = frozenset(DEFAULT_PORTS)
SOCKS_SCHEMES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})


def redact_url(url: str) -> str:
    """Return ``url`` with any user information replaced by ``***``, for messages and logs.

    Everything between ``://`` and the last ``@`` goes: a password holding an unescaped
    ``/``, ``?`` or ``#`` is hidden too (a proxy URL has no meaningful path to lose).
    """
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    at = url.rfind("@", start)
    if at < 0:
        return url
    return url[:start] + "***@" + url[at + 1 :]


@dataclass(frozen=True)
class ProxyURL:
    """A parsed proxy URL.

    ``host`` has no brackets (an IPv6 address is bare) and is ASCII; ``username`` and
    ``password`` are percent-decoded (``DOMAIN%5Cuser`` becomes ``DOMAIN\\user``).
    ``str()`` gives ``scheme://host:port`` without credentials and ``repr()`` masks the
    password, so a ``ProxyURL`` is safe to log or put in an exception message.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def is_socks(self) -> bool:
        """True for the ``socks4``, ``socks4a``, ``socks5`` and ``socks5h`` schemes."""
        return self.scheme in SOCKS_SCHEMES

    @property
    def is_tls(self) -> bool:
        """True for an ``https://`` proxy: the connection to the proxy itself is TLS."""
        return self.scheme == "https"

    @property
    def has_credentials(self) -> bool:
        """True when the URL carried a user name (the password may be empty)."""
        return self.username is not None

    @property
    def authority(self) -> str:
        """``host:port``, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"

    def __repr__(self) -> str:
        password = "None" if self.password is None else "'***'"
        return (
            f"ProxyURL(scheme={self.scheme!r}, host={self.host!r}, port={self.port!r}, "
            f"username={self.username!r}, password={password})"
        )


def _normalise_host(host: str, shown: str) -> str:
    if ":" in host:
        addr, _, zone = host.partition("%")
        try:
            compressed = ipaddress.IPv6Address(addr).compressed
        except ValueError as exc:
            raise InvalidURL(f"proxy URL {shown!r}: bad IPv6 address") from exc
        return compressed + ("%" + zone if zone else "")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"proxy URL {shown!r}: the host cannot be IDNA-encoded") from exc
    return host


def parse_proxy_url(url: str) -> ProxyURL:
    """Parse a proxy URL such as ``http://user:pass@proxy:3128`` or ``socks5h://proxy``.

    A URL without ``scheme://`` is taken as ``http://`` (as curl and requests do). The
    port defaults to 80 for ``http``, 443 for ``https`` and 1080 for the SOCKS schemes.
    A path, query or fragment is ignored.

    Raises:
        InvalidURL: not a string, an unsupported scheme, no host, or a bad port. The
            message never contains the credentials.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"a proxy URL must be a str, not {type(url).__name__}")
    url = url.strip()
    shown = redact_url(url)
    if any(c in url for c in "\r\n\x00 \t"):
        raise InvalidURL(f"proxy URL {shown!r} contains whitespace or control characters")
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's message may quote part of the user info (a password with an unescaped
        # '/' ends up parsed as the port): it is neither shown nor chained.
        raise InvalidURL(f"proxy URL {shown!r} is not a valid URL (bad port or host)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidURL(
            f"unsupported proxy scheme {scheme!r} in {shown!r}: use one of "
            + ", ".join(f"{s}://" for s in DEFAULT_PORTS)
        )
    host = parts.hostname
    if not host:
        raise InvalidURL(f"proxy URL {shown!r} has no host")
    host = _normalise_host(host, shown)
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif port == 0:
        raise InvalidURL(f"proxy URL {shown!r}: port 0 is not a valid port")
    username: str | None = None
    password: str | None = None
    if parts.username is not None:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password) if parts.password is not None else None
        if username == "" and password is None:
            username = None
    return ProxyURL(scheme, host, port, username, password)
