"""``wsclient --diagnose URL``: the opening walked stage by stage, each timed, stopping at the
first failure with a hint of what to try.

It runs the real opening (``WebSocketClient.connect``) with a trace hook, so what it reports
is what a connection does; then the 101's subprotocol and extensions, and a ping round trip.
Output, one line per stage (in this order; stages that do not apply are not printed)::

    proxy: ok (0.1 ms) http://proxy:3128 (environment variable HTTPS_PROXY)
    dns / tcp / proxy_tls / proxy_connect / tls / handshake / ping: ok (<ms> ms) <details>
    <stage>: FAILED (<ms> ms) <error>
    hint: <what to try>
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .client import DEFAULT_TIMEOUT, WebSocketClient
from .exceptions import (
    ConnectFailed,
    ConnectTimeout,
    HandshakeError,
    InvalidStatus,
    ProxyAuthenticationRequired,
    ProxyError,
    TLSError,
)
from .proxy.auth import parse_challenges, spnego_available
from .uri import parse_uri

__all__ = ["run"]

_STAGES = ("proxy", "dns", "tcp", "proxy_tls", "proxy_connect", "tls", "handshake", "ping")
# connect()'s own keywords; the rest of connect_kwargs are ClientConfig options.
_CONNECT_KEYS = frozenset(
    {"subprotocols", "headers", "origin", "proxies", "timeout", "verify", "cert", "trust_env", "request_options"}
)


def _tls_details(info: dict[str, Any]) -> str:
    return (
        f"{info.get('version')} {info.get('cipher')}; subject {info.get('subject') or '(not verified)'}; "
        f"issuer {info.get('issuer') or '?'}; expires {info.get('not_after') or '?'}; "
        f"verified by {info.get('trust_source', '?')}"
    )


def _details(stage: str, info: dict[str, Any]) -> str:
    """One stage's trace information in words."""
    if stage == "proxy":
        return f"{info['proxy'] or 'DIRECT'} ({info['source']})"
    if stage == "dns":
        return f"{info['host']} -> {', '.join(str(a) for a in info['addresses'])}"
    if stage == "tcp":
        host, port = info["address"][:2]
        return f"connected to {host}:{port}"
    if stage in ("proxy_tls", "tls"):
        return _tls_details(info)
    if stage == "proxy_connect":
        if "socks" in info:
            return f"{info['socks']} through {info['address'][0]}:{info['address'][1]}"
        offered = ", ".join(info["schemes_offered"]) or "none asked"
        return f"{info['status']}; authentication offered: {offered}; used: {info['scheme_used'] or 'none'}"
    return ""


def _applicable(url_secure: bool, proxy: str | None) -> list[str]:
    """The stages an opening goes through, in order, for this URL and proxy."""
    scheme = proxy.split("://", 1)[0] if proxy else None
    stages = ["proxy", "dns", "tcp"]
    if scheme is not None and scheme.startswith("socks"):
        stages = ["proxy", "dns"]  # PySocks connects and negotiates in one step
    if scheme == "https":
        stages.append("proxy_tls")
    if scheme is not None:
        stages.append("proxy_connect")
    if url_secure:
        stages.append("tls")
    return [*stages, "handshake", "ping"]


def _auth_hint(exc: ProxyAuthenticationRequired, proxy_has_user: bool) -> str:
    response = exc.response
    offered = [c.scheme for c in parse_challenges(response.headers.get_all("Proxy-Authenticate"))] if response else []
    names = ", ".join(offered) or "nothing usable"
    if response is None:
        return "the SOCKS proxy refused the user name and password in the proxy URL"
    if offered and set(offered) <= {"negotiate"} and not spnego_available():
        return "the proxy offered only Negotiate; install python-wsclient[kerberos] and get a ticket with kinit"
    if "ntlm" in offered and not spnego_available() and not {"basic", "digest"} & set(offered):
        return f"the proxy offered {names}; install python-wsclient[ntlm] and give DOMAIN%5Cuser:password in the proxy URL"
    if set(offered) <= {"negotiate"}:
        return "the proxy wants Kerberos (Negotiate): run kinit (KRB5CCNAME) for a ticket"
    if not proxy_has_user:
        return (
            f"the proxy offered {names}; give credentials in the proxy URL: http://user:password@proxy:port "
            "(percent-encoded; a Windows domain user as DOMAIN%5Cuser)"
        )
    return f"the proxy offered {names} and refused the credentials: check the user name and password"


def _hint(stage: str, exc: BaseException, proxy: str | None, timeout: float | None, has_user: bool = False) -> str:
    """What to try after ``exc`` ended ``stage``."""
    where = "the proxy" if stage in ("proxy_tls", "proxy_connect") or (proxy and stage in ("dns", "tcp")) else "the server"
    if isinstance(exc, ConnectTimeout):
        return (
            f"{where} did not answer within timeout={timeout}: a firewall may drop the packets, or a proxy may "
            "be required (HTTPS_PROXY, --proxy); raise the timeout on a slow link"
        )
    if stage == "proxy":
        return "check proxies= / request_options['proxy'] / the *_PROXY variables; --no-proxy goes direct"
    if stage == "dns":
        return f"the name of {where} does not resolve: check its spelling and this machine's DNS (a proxy may be needed)"
    if stage == "tcp":
        return (
            f"nothing accepts connections at {where}'s address: check the host and port, "
            "and whether a proxy is required (HTTPS_PROXY, --proxy)"
        )
    if stage == "proxy_tls":
        return "the proxy's TLS certificate is not trusted: give its CA with request_options['proxy_verify']"
    if isinstance(exc, ProxyAuthenticationRequired):
        return _auth_hint(exc, has_user)
    if isinstance(exc, ProxyError):
        return "the proxy refused to connect to the target: its policy may not allow this host or port (443 only?)"
    if stage == "tls" and isinstance(exc, TLSError):
        if "hostname" in str(exc) or "match" in str(exc):
            return "the certificate does not name this host: use the name it was issued for"
        return (
            "the server's certificate is not trusted: give its CA bundle with --ca (verify='ca.pem') or try "
            "--system-trust; --insecure only to test"
        )
    if isinstance(exc, InvalidStatus):
        return (
            f"the server answered {exc.response.status} instead of 101: check the URL path, the subprotocols, "
            "Origin and the authentication headers"
        )
    if isinstance(exc, HandshakeError):
        return "the answer is not a WebSocket upgrade: is this a WebSocket endpoint? (a middlebox may alter it)"
    if stage == "ping":
        return "the server does not answer pings: keepalive (ping_interval) would close this connection"
    return "see the error above"


def run(url: str, connect_kwargs: dict[str, Any], out: TextIO) -> int:
    """Open ``url`` as ``wsclient.connect(url, **connect_kwargs)`` would, printing each stage.

    Returns 0 when every stage passed (opening, 101, ping round trip), 1 otherwise.

    Raises:
        TypeError, ValueError: ``connect_kwargs`` hold an unknown option or a value that
            cannot be sent, or ``url`` is not a ws:// or wss:// URL (``InvalidURL``): usage
            errors, for the caller to report.
    """
    parse_uri(url)
    kwargs = dict(connect_kwargs)
    timeout = kwargs.get("timeout", DEFAULT_TIMEOUT)
    config = {k: v for k, v in kwargs.items() if k not in _CONNECT_KEYS}
    options = dict(kwargs.get("request_options") or {})
    options.update(
        proxies=kwargs.get("proxies"),
        timeout=timeout,
        verify=kwargs.get("verify", True),
        cert=kwargs.get("cert"),
        trust_env=kwargs.get("trust_env", True),
    )
    client = WebSocketClient(**config)
    done: list[str] = []
    proxy: list[str | None] = [None]
    has_user = [False]
    mark = [time.monotonic()]

    def report(stage: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        seconds = info.get("seconds", now - mark[0])
        mark[0] = now
        done.append(stage)
        if stage == "proxy":
            proxy[0] = info.get("proxy")
            has_user[0] = bool(info.get("credentials"))
        out.write(f"{stage}: ok ({seconds * 1000:.1f} ms) {_details(stage, info)}\n")
        out.flush()

    def fail(stage: str, exc: BaseException) -> int:
        elapsed = (time.monotonic() - mark[0]) * 1000
        out.write(f"{stage}: FAILED ({elapsed:.1f} ms) {exc}\n")
        out.write(f"hint: {_hint(stage, exc, proxy[0], timeout, has_user[0])}\n")
        out.flush()
        return 1

    secure = url.lower().startswith("wss:")
    try:
        ws = client._connect(
            url, kwargs.get("subprotocols"), kwargs.get("origin"), kwargs.get("headers"), options, True, report
        )
        assert ws is not None  # wait=True returns the connection or raises
    except ConnectFailed as exc:
        stage = next(s for s in _applicable(secure, proxy[0]) if s not in done)
        return fail(stage, exc)
    assert ws is not None
    with ws:
        response = ws.response
        extensions = ", ".join(name for name, _ in ws.extensions) or "none"
        now = time.monotonic()
        out.write(
            f"handshake: ok ({(now - mark[0]) * 1000:.1f} ms) {response.status} {response.reason}; "
            f"subprotocol {ws.subprotocol or 'none'}; extensions {extensions}\n"
        )
        mark[0] = now
        return _ping(ws, timeout, out, fail)


def _ping(ws: Any, timeout: float | None, out: TextIO, fail: Callable[[str, BaseException], int]) -> int:
    """A ping and its pong, bounded by ``timeout``."""
    payload = b"wsclient-diagnose"
    answered = threading.Event()

    def on_pong(data: bytes) -> None:
        if data == payload:
            answered.set()

    ws.on("pong", on_pong)
    started = time.monotonic()
    try:
        ws.ping(payload)
    except Exception as exc:
        return fail("ping", exc)
    if not answered.wait(timeout if timeout is not None else DEFAULT_TIMEOUT):
        return fail("ping", TimeoutError(f"no pong within {timeout} s"))
    out.write(f"ping: ok ({(time.monotonic() - started) * 1000:.1f} ms) pong received\n")
    return 0
