"""SOCKS4, SOCKS4a, SOCKS5 and SOCKS5h tunnels through PySocks (the extra ``python-wsclient[socks]``).

``socks4a://`` and ``socks5h://`` let the proxy resolve the target's name; ``socks4://``
and ``socks5://`` resolve it here. The socket handed back is a plain ``socket.socket``
whose peer is the proxy (``remote_address`` shows the proxy, as for HTTP tunnels).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from .._net import (
    Deadline,
    OnSocket,
    Trace,
    TransportOptions,
    UnreachableProxy,
    UnreachableTimeout,
    map_errors,
    resolve,
    tcp_socket_options,
)
from ..exceptions import ConnectFailed, ProxyAuthenticationRequired, ProxyError
from .url import ProxyURL

__all__ = ["open_socks_tunnel"]

logger = logging.getLogger("wsclient.proxy")

_INSTALL_HINT = "SOCKS proxies need PySocks: pip install python-wsclient[socks]"


def _import_pysocks() -> Any:
    try:
        import socks as pysocks
    except ImportError as exc:
        raise ProxyError(_INSTALL_HINT) from exc
    return pysocks


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def open_socks_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    *,
    deadline: Deadline,
    options: TransportOptions,
    on_socket: OnSocket | None = None,
    trace: Trace | None = None,
    attempt_timeout: float | None = None,
) -> socket.socket:
    """Connect to ``host:port`` through the SOCKS proxy ``proxy``.

    Raises:
        ProxyAuthenticationRequired: the SOCKS5 proxy refused the credentials (or wanted
            some and none were given).
        ProxyError: PySocks is missing, the proxy is unreachable, or it refused the
            connection (its reply code is in the message).
        ConnectTimeout: ``deadline`` passed.
        ConnectFailed: the target's name could not be resolved here (``socks4``/``socks5``).
    """
    pysocks = _import_pysocks()
    host = host.strip("[]")
    remote_dns = proxy.scheme in ("socks4a", "socks5h")
    is_socks4 = proxy.scheme in ("socks4", "socks4a")
    if is_socks4 and ":" in host:
        raise ProxyError(f"SOCKS4 cannot reach the IPv6 address {host}: use a socks5:// or socks5h:// proxy")
    bound = deadline if attempt_timeout is None else deadline.shorter(attempt_timeout)
    if proxy.scheme == "socks4" and not _is_ip(host):
        # SOCKS4 carries an IPv4 address only: resolve here, with a clear error.
        started = time.monotonic()
        with map_errors({socket.gaierror: lambda e: ConnectFailed(f"cannot resolve {host!r} for the SOCKS4 proxy: {e.strerror}")}):
            infos = [i for i in resolve(host, port, bound.remaining(), repr(host)) if i[0] == socket.AF_INET]
        if not infos:
            raise ConnectFailed(f"cannot resolve {host!r} for the SOCKS4 proxy: it has no IPv4 address")
        if trace is not None:
            addresses = [info[4][0] for info in infos]
            trace("dns", {"host": host, "addresses": addresses, "seconds": time.monotonic() - started})
        host = str(infos[0][4][0])
    if is_socks4 and proxy.password:
        logger.debug("SOCKS4 has no passwords: only the user name is sent to %s", proxy)
    left = bound.timeout(f"before connecting to the proxy {proxy}")
    logger.debug("SOCKS connect to %s:%d through %s", host, port, proxy)
    started = time.monotonic()
    with map_errors(
        {
            pysocks.ProxyError: lambda e: _translate(pysocks, e, proxy, host, port),
            socket.gaierror: lambda e: UnreachableProxy(f"cannot resolve the proxy host {proxy.host!r}"),
            TimeoutError: lambda e: UnreachableTimeout(f"timed out connecting to the proxy {proxy}"),
            OSError: lambda e: UnreachableProxy(f"cannot connect to the proxy {proxy}: {e}"),
        }
    ):
        sock = _socks_connect(
            pysocks,
            proxy,
            (host, port),
            deadline=bound,
            timeout=left,
            source_address=options.source_address,
            proxy_type=pysocks.SOCKS4 if is_socks4 else pysocks.SOCKS5,
            remote_dns=remote_dns,
            password=proxy.password if not is_socks4 else None,
            socket_options=tcp_socket_options(options.socket_options, options.disable_nagle_algorithm),
            on_socket=on_socket,
            trace=trace,
        )
    # Hand back a plain socket: PySocks' getpeername() names the target, ours the proxy.
    family, kind, proto = sock.family, sock.type, sock.proto
    plain = socket.socket(family, kind, proto, fileno=sock.detach())
    if trace is not None:
        version = "SOCKS4" if is_socks4 else "SOCKS5"
        trace("proxy_connect", {"socks": version, "address": plain.getpeername()[:2], "seconds": time.monotonic() - started})
    if on_socket is not None:
        on_socket(plain)
    return plain


def _socks_connect(
    pysocks: Any,
    proxy: ProxyURL,
    target: tuple[str, int],
    *,
    deadline: Deadline,
    timeout: float | None,
    source_address: tuple[str, int] | None,
    proxy_type: int,
    remote_dns: bool,
    password: str | None,
    socket_options: list[tuple[int, int, Any]],
    on_socket: Callable[[Any], None] | None,
    trace: Trace | None,
) -> Any:
    """PySocks' ``create_connection``, but each socket goes to ``on_socket`` before it
    connects, so that ``abort()`` can shut it down during the SOCKS negotiation, and the
    proxy's name is resolved and its answers read within ``deadline``."""
    error: BaseException | None = None
    started = time.monotonic()
    infos = resolve(proxy.host, proxy.port, timeout, f"the proxy {proxy}")
    if trace is not None:
        addresses = [info[4][0] for info in infos]
        trace("dns", {"host": proxy.host, "addresses": addresses, "seconds": time.monotonic() - started})
    for family, kind, proto, _, _ in infos:
        sock = _bounded_socket_type(pysocks)(family, kind, proto)
        sock.wsclient_deadline = deadline
        try:
            for level, name, value in socket_options:
                sock.setsockopt(level, name, value)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.set_proxy(proxy_type, proxy.host, proxy.port, remote_dns, proxy.username, password)
            if on_socket is not None:
                on_socket(sock)
            sock.connect(target)
            return sock
        except (pysocks.ProxyError, OSError) as exc:
            sock.close()
            error = exc
            if isinstance(exc, pysocks.ProxyError) and not isinstance(
                getattr(exc, "socket_err", None), OSError
            ):
                raise  # the proxy answered: trying its other addresses would not help
    assert error is not None
    raise error


_BOUNDED: list[type] = []


def _bounded_socket_type(pysocks: Any) -> Any:
    """PySocks' socket, with every read of the negotiation waiting only for the time left.

    PySocks gives each read the socket's whole timeout: a proxy that trickles its answer a
    byte at a time would hold the opening far past its ``timeout``. The class is made
    once, on first use (PySocks is an optional import).
    """
    if not _BOUNDED:

        class BoundedSocksSocket(pysocks.socksocket):  # type: ignore[misc, name-defined]
            wsclient_deadline: Deadline

            def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
                # A TimeoutError here is PySocks' "Socket error": _translate maps it.
                left = self.wsclient_deadline.remaining()
                if left is not None:
                    if left <= 0:
                        raise TimeoutError("timed out")
                    socket.socket.settimeout(self, left)
                return super().recv_into(buffer, nbytes, flags)  # type: ignore[no-any-return]

        _BOUNDED.append(BoundedSocksSocket)
    return _BOUNDED[0]


def _translate(pysocks: Any, exc: BaseException, proxy: ProxyURL, host: str, port: int) -> ConnectFailed:
    """Map a PySocks error to ours. PySocks wraps a protocol error raised during the
    negotiation into ``GeneralProxyError("Socket error", error)``: look inside first."""
    inner = getattr(exc, "socket_err", None)
    if isinstance(exc, pysocks.GeneralProxyError) and isinstance(inner, pysocks.ProxyError):
        exc = inner
        inner = getattr(exc, "socket_err", None)
    if isinstance(exc, pysocks.SOCKS5AuthError):
        return ProxyAuthenticationRequired(
            f"the SOCKS5 proxy {proxy} refused the authentication: {_reason(exc)}"
        )
    if isinstance(exc, (pysocks.SOCKS5Error, pysocks.SOCKS4Error)):
        return ProxyError(f"the SOCKS proxy {proxy} refused the connection to {host}:{port}: {_reason(exc)}")
    if isinstance(exc, pysocks.ProxyConnectionError):
        if isinstance(inner, TimeoutError):
            return UnreachableTimeout(f"timed out connecting to the proxy {proxy}")
        reason = inner.strerror if isinstance(inner, OSError) and inner.strerror else inner or _reason(exc)
        return UnreachableProxy(f"cannot connect to the proxy {proxy}: {reason}")
    # A proxy that accepted the connection and then went silent, or closed it, during the
    # negotiation: as good as unreachable (the opening moves on to the next candidate).
    if isinstance(inner, TimeoutError):
        return UnreachableTimeout(f"timed out talking to the SOCKS proxy {proxy}")
    if isinstance(inner, ConnectionError) or _reason(exc) == "Connection closed unexpectedly":
        return UnreachableProxy(f"the SOCKS proxy {proxy} closed the connection during the negotiation")
    if isinstance(inner, socket.gaierror):
        return ConnectFailed(f"cannot resolve {host!r} for the SOCKS proxy: {inner.strerror}")
    return ProxyError(f"the SOCKS proxy {proxy} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "msg", None) or (exc.args[0] if exc.args else "") or type(exc).__name__
    cause = getattr(exc, "socket_err", None)
    if cause is not None and not isinstance(cause, BaseException):
        cause = None
    if cause is not None:
        return f"{msg} ({getattr(cause, 'strerror', None) or cause})"
    return str(msg)
