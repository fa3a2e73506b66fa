"""Which proxy, if any, a connection goes through.

Precedence, highest first (``docs/proxies.md`` has the long form):

1. ``request_options["proxy"]``: that proxy for this connection, whatever ``NO_PROXY``
   says; an empty string means a direct connection.
2. ``proxies=`` (a mapping, even an empty one): the keys ``"<scheme>://<host>"``,
   ``"<scheme>"``, the HTTP fallback (``"http"`` for ``ws``, ``"https"`` for ``wss``),
   ``"all://<host>"``, ``"all"``, first present wins; a present key whose value is empty or
   ``None`` means a direct connection. Only the mapping's own ``"no_proxy"`` exempts hosts;
   the environment is not read at all.
   A ``"pac"`` key (and no key for the URL) hands the choice to the PAC file.
3. ``trust_env=True``: ``WS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` for ``ws://``,
   ``WSS_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` for ``wss://``, either case with the
   lower-case one winning, and ``NO_PROXY`` / ``no_proxy`` exempting hosts; when none is
   set, the operating system's settings (``urllib.request.getproxies``/``proxy_bypass``).
4. Otherwise a direct connection.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .._net import Deadline
from ..uri import WSURI
from .url import ProxyURL, parse_proxy_url

__all__ = ["ProxySelection", "check_proxies_keys", "no_proxy_matches", "select_proxy"]

logger = logging.getLogger("wsclient.proxy")

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Environment variables per target scheme, in order of preference.
_ENV_CHAIN: dict[str, tuple[str, ...]] = {
    "ws": ("ws_proxy", "http_proxy", "all_proxy"),
    "wss": ("wss_proxy", "https_proxy", "all_proxy"),
}
# Keys of a ``proxies=`` mapping that stand in for a missing ws/wss key.
_HTTP_FALLBACK = {"ws": "http", "wss": "https"}
# The keys a ``proxies=`` mapping may hold, besides "<scheme>://<host>" .
_KEYS = frozenset({"ws", "wss", "http", "https", "all", "no_proxy", "pac"})
_URL_KEY_SCHEMES = frozenset({"ws", "wss", "http", "https", "all"})


@dataclass(frozen=True)
class ProxySelection:
    """The proxy choice for one connection: the candidates to try in order (``None`` is a
    direct connection) and ``source``, a sentence saying why (never a credential)."""

    candidates: tuple[ProxyURL | None, ...]
    source: str

    @property
    def proxy(self) -> ProxyURL | None:
        """The first candidate."""
        return self.candidates[0]


def check_proxies_keys(proxies: Mapping[str, object]) -> None:
    """Raise ``ValueError`` naming a ``proxies=`` key wsclient does not understand."""
    for key in proxies:
        if not isinstance(key, str):
            raise ValueError(f"proxies keys must be str, not {key!r}")
        scheme, sep, host = key.partition("://")
        if (sep and scheme in _URL_KEY_SCHEMES and host) or (not sep and key in _KEYS):
            continue
        raise ValueError(
            f"unknown proxies key {key!r}: use ws, wss, http, https, all, <scheme>://<host>, no_proxy or pac"
        )


def select_proxy(
    uri: WSURI,
    *,
    proxies: Mapping[str, str | None] | None,
    trust_env: bool,
    request_proxy: str | None,
    environ: Mapping[str, str] | None = None,
    deadline: Deadline | None = None,
    options: object = None,
) -> ProxySelection:
    """Choose the proxy candidates for a connection to ``uri``.

    Args:
        uri: the parsed WebSocket URL.
        proxies: the ``proxies=`` mapping (``"ws"``, ``"wss"``, ``"all"``, ``"no_proxy"``,
            ``"pac"``, also ``"http"``/``"https"`` and ``"<scheme>://<host>"`` keys), or None.
        trust_env: read the environment (then the OS settings) when ``proxies`` is None.
        request_proxy: ``request_options["proxy"]``; ``""`` forces a direct connection.
        environ: the environment to read (``os.environ`` when None).
        deadline, options: handed to the PAC evaluation (``proxies["pac"]``; ``options`` is a
            ``pac.FetchOptions``).

    Raises:
        InvalidURL: the chosen proxy URL is unusable (unsupported scheme, no host, ...).
        ValueError: an unknown ``proxies`` key.
        ProxyError: a PAC file that cannot be fetched or evaluated.
    """
    if request_proxy is not None:
        if not request_proxy:
            return ProxySelection((None,), "request_options['proxy'] is empty (direct)")
        return ProxySelection((parse_proxy_url(request_proxy),), "request_options['proxy']")
    if proxies is not None:
        check_proxies_keys(proxies)
        key, url = _from_mapping(uri, proxies)
        exempt = proxies.get("no_proxy") or ""
        if (url or "pac" in proxies) and no_proxy_matches(uri.host, uri.port, exempt):
            return ProxySelection((None,), f"proxies['no_proxy'] {_matched(uri, exempt)} matched")
        if key is None and proxies.get("pac"):
            from .pac import resolve_pac

            candidates, why = resolve_pac(str(proxies["pac"]), uri, deadline or Deadline(None), options)
            return ProxySelection(candidates, why)
        if not url:
            why = f"proxies[{key!r}] is empty" if key else f"no proxies entry for {uri.scheme}:// (direct)"
            return ProxySelection((None,), why)
        return ProxySelection((parse_proxy_url(url),), f"proxies[{key!r}]")
    if not trust_env:
        return ProxySelection((None,), "no proxy configured (trust_env=False)")
    env = _Environ() if environ is None else environ
    name, url = _environment(uri.scheme, env)
    if url:
        exempt = _env_value(env, "no_proxy") or ""
        if no_proxy_matches(uri.host, uri.port, exempt):
            return ProxySelection((None,), f"NO_PROXY {_matched(uri, exempt)} matched")
        return ProxySelection((parse_proxy_url(url),), f"environment variable {name}")
    if environ is None and sys.platform in _OS_SETTINGS_PLATFORMS:
        system = _system_proxy(uri)
        if system is not None:
            return system
    return ProxySelection((None,), "no proxy configured")


# Where urllib.request.getproxies() reads the OS settings (registry, System Configuration).
# Elsewhere it reads only the environment, already consulted above, and rescanning it cost
# about 0.5 ms a connection (cProfile of 300 connects: the largest item after the syscalls).
_OS_SETTINGS_PLATFORMS = frozenset({"win32", "darwin"})


def _system_proxy(uri: WSURI) -> ProxySelection | None:
    """The operating system's proxy settings (Windows registry, macOS System Configuration;
    on other systems urllib reads only the environment, already consulted)."""
    found = urllib.request.getproxies()
    url = found.get(_HTTP_FALLBACK[uri.scheme]) or found.get("all")
    if not url:
        return None
    if urllib.request.proxy_bypass(uri.host):
        return ProxySelection((None,), "OS proxy settings: bypassed for this host")
    return ProxySelection((parse_proxy_url(url),), "OS proxy settings")


def _matched(uri: WSURI, no_proxy: str) -> str:
    """The first ``NO_PROXY`` entry that exempts ``uri``, quoted, for ``source``."""
    for entry in _entries(no_proxy):
        if no_proxy_matches(uri.host, uri.port, entry):
            return f"entry {entry!r}"
    return "entry"


def _from_mapping(uri: WSURI, proxies: Mapping[str, str | None]) -> tuple[str | None, str | None]:
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
            return key, proxies[key] or None
    return None, None


class _Environ(Mapping[str, str]):
    """``os.environ`` for the lookups above, read through its underlying dict when it has
    one: ``os.environ.get()`` of a variable that is not set raises and catches two
    ``KeyError``, and a connection looks up seven names, most of them unset."""

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        environ = os.environ
        data = getattr(environ, "_data", None)
        if not isinstance(data, dict):
            return environ.get(name, default)
        raw = data.get(environ.encodekey(name))  # type: ignore[attr-defined]
        return default if raw is None else environ.decodevalue(raw)  # type: ignore[attr-defined,no-any-return]

    def __getitem__(self, name: str) -> str:
        return os.environ[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


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


def _environment(scheme: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the variable's name as set, its value) of the first proxy variable set for ``scheme``."""
    for name in _ENV_CHAIN[scheme]:
        value = _env_value(env, name)
        if value:
            shown = name if env.get(name) else name.upper()
            return shown, value.strip()
    return None, None


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
