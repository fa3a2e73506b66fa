"""Which proxy, if any, a connection goes through.

Precedence, highest first (``docs/proxies.md`` has the long form):

1. ``request_options["proxy"]``: that proxy for this connection, whatever ``NO_PROXY``
   says; an empty string means a direct connection.
2. ``proxies=`` (a mapping, even an empty one): the keys ``"<scheme>://<host>"``,
   ``"<scheme>"``, the HTTP fallback (``"http"`` for ``ws``, ``"https"`` for ``wss``),
   ``"all://<host>"``, ``"all"``, first present wins; a present key whose value is empty or
   ``None`` means a direct connection. Only the mapping's own ``"no_proxy"`` exempts hosts;
   the environment is not read at all.
3. ``trust_env=True``: ``WS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` for ``ws://``,
   ``WSS_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` for ``wss://``, either case with the
   lower-case one winning, and ``NO_PROXY`` / ``no_proxy`` exempting hosts.
4. Otherwise a direct connection.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..uri import WSURI
from .url import ProxyURL, parse_proxy_url

__all__ = ["environment_proxy", "no_proxy_matches", "select_proxy"]

logger = logging.getLogger("wsclient.proxy")

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Environment variables per target scheme, in order of preference.
_ENV_CHAIN: dict[str, tuple[str, ...]] = {
    "ws": ("ws_proxy", "http_proxy", "all_proxy"),
    "wss": ("wss_proxy", "https_proxy", "all_proxy"),
}
# Keys of a ``proxies=`` mapping that stand in for a missing ws/wss key.
_HTTP_FALLBACK = {"ws": "http", "wss": "https"}


def select_proxy(
    uri: WSURI,
    *,
    proxies: Mapping[str, str | None] | None,
    trust_env: bool,
    request_proxy: str | None,
    environ: Mapping[str, str] | None = None,
) -> ProxyURL | None:
    """Choose the proxy for a connection to ``uri``, or ``None`` for a direct connection.

    Args:
        uri: the parsed WebSocket URL.
        proxies: the ``proxies=`` mapping (``"ws"``, ``"wss"``, ``"all"``, ``"no_proxy"``,
            also ``"http"``/``"https"`` and ``"<scheme>://<host>"`` keys), or ``None``.
        trust_env: read the environment when ``proxies`` is ``None``.
        request_proxy: ``request_options["proxy"]``; ``""`` forces a direct connection.
        environ: the environment to read (``os.environ`` when ``None``).

    Raises:
        InvalidURL: the chosen proxy URL is unusable (unsupported scheme, no host, ...).
    """
    if request_proxy is not None:
        if not request_proxy:
            return None
        return parse_proxy_url(request_proxy)
    if proxies is not None:
        url = _from_mapping(uri, proxies)
        if not url:
            return None
        if no_proxy_matches(uri.host, uri.port, proxies.get("no_proxy") or ""):
            logger.debug("%s is exempt from the proxy by proxies['no_proxy']", uri.host)
            return None
        return parse_proxy_url(url)
    if not trust_env:
        return None
    env = os.environ if environ is None else environ
    url = environment_proxy(uri.scheme, env)
    if not url:
        return None
    if no_proxy_matches(uri.host, uri.port, _env_value(env, "no_proxy") or ""):
        logger.debug("%s is exempt from the proxy by NO_PROXY", uri.host)
        return None
    return parse_proxy_url(url)


def _from_mapping(uri: WSURI, proxies: Mapping[str, str | None]) -> str | None:
    scheme = uri.scheme
    host = uri.host.lower()
    keys = (
        f"{scheme}://{host}",
        scheme,
        _HTTP_FALLBACK[scheme],
        f"all://{host}",
        "all",
    )
    for key in keys:
        if key in proxies:
            return proxies[key] or None
    return None


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    """The value of ``name`` (lower case) or ``NAME``; a set lower-case one always wins.

    An empty lower-case variable hides the upper-case one, as in ``urllib``.
    """
    lower = env.get(name)
    if lower is not None:
        return lower or None
    if name == "http_proxy" and "REQUEST_METHOD" in env:
        # CGI ("httpoxy"): HTTP_PROXY may come from a request's "Proxy:" header.
        return None
    return env.get(name.upper()) or None


def environment_proxy(scheme: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the environment names for a ``ws`` or ``wss`` target, or ``None``."""
    env = os.environ if environ is None else environ
    for name in _ENV_CHAIN[scheme]:
        value = _env_value(env, name)
        if value:
            return value.strip()
    return None


@dataclass(frozen=True)
class _Rule:
    network: _IPNetwork | None
    domain: str | None
    port: int | None


def _parse_rule(entry: str) -> _Rule | None:
    """One ``NO_PROXY`` entry: ``host``, ``.domain``, ``*.domain``, ``host:port``,
    an IPv4/IPv6 address or CIDR range, ``[v6]`` or ``[v6]:port``. ``None`` if unusable."""
    port: int | None = None
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            return None
        addr, rest = entry[1:close], entry[close + 1 :]
        if rest.startswith("/"):
            addr += rest
        elif rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        elif rest:
            return None
    elif entry.count(":") == 1:
        addr, _, port_text = entry.partition(":")
        if not port_text.isdigit():
            return None
        port = int(port_text)
    else:
        addr = entry
    addr = addr.split("%", 1)[0] if ":" in addr else addr
    try:
        return _Rule(ipaddress.ip_network(addr, strict=False), None, port)
    except ValueError:
        pass
    domain = addr
    if domain.startswith("*."):
        domain = domain[2:]
    domain = domain.lstrip(".").rstrip(".")
    if not domain or ":" in domain or "/" in domain:
        return None
    return _Rule(None, domain, port)


def _entries(no_proxy: str | Iterable[str]) -> list[str]:
    if isinstance(no_proxy, str):
        items: Iterable[str] = no_proxy.replace(",", " ").split()
    else:
        items = (part for value in no_proxy for part in value.replace(",", " ").split())
    return [item.strip().lower() for item in items if item.strip()]


def no_proxy_matches(host: str, port: int, no_proxy: str | Iterable[str]) -> bool:
    """Whether ``host:port`` is exempt from proxying by a ``NO_PROXY``-style list.

    Entries are separated by commas or whitespace: ``*`` (everything), a host name, a
    domain suffix with or without a leading ``.`` or ``*.`` (``example.com`` also matches
    ``www.example.com``), any of those with ``:port``, an IPv4 or IPv6 address, ``[v6]:port``
    or a CIDR range (``10.0.0.0/8``, ``fd00::/8``). Names are not resolved: a name entry
    never matches an address target, nor the reverse.
    """
    target = host.strip("[]").lower().rstrip(".")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(target.split("%", 1)[0])
    except ValueError:
        address = None
    for entry in _entries(no_proxy):
        if entry == "*":
            return True
        rule = _parse_rule(entry)
        if rule is None:
            logger.debug("ignoring the unusable NO_PROXY entry %r", entry)
            continue
        if rule.port is not None and rule.port != port:
            continue
        if rule.network is not None:
            if address is not None and address.version == rule.network.version:
                if address in rule.network:
                    return True
            continue
        if address is None and rule.domain is not None:
            if target == rule.domain or target.endswith("." + rule.domain):
                return True
    return False
