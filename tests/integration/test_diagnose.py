"""``wsclient.diagnose.run``: the opening walked stage by stage against real peers (squid,
a websockets server with a trustme certificate), and where it stops when something is wrong."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "proxy"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import proxypeers  # noqa: E402
from proxypeers import BASIC_PASSWORD, USER  # noqa: E402

from wsclient import diagnose  # noqa: E402
from wsclient.exceptions import ProxyAuthenticationRequired  # noqa: E402
from wsclient.http11 import Headers, Response  # noqa: E402

# The real proxies and targets of the proxy tests, as fixtures of this module.
proxy_reaper = proxypeers.proxy_reaper
squid_basic = proxypeers.squid_basic
ws_target = proxypeers.ws_target
wss_target = proxypeers.wss_target

LINE = re.compile(r"^(?P<stage>[a-z_]+): (?P<result>ok|FAILED) \((?P<ms>\d+\.\d) ms\)(?: (?P<details>.*))?$")


def run(url: str, **kwargs: Any) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = diagnose.run(url, kwargs, out)
    lines = out.getvalue().splitlines()
    for text in lines:
        assert LINE.match(text) or text.startswith("hint: "), text
    return code, lines


def stages(lines: list[str]) -> list[tuple[str, str]]:
    return [(m["stage"], m["result"]) for m in map(LINE.match, lines) if m]


def test_all_stages_pass_over_tls_through_squid(squid_basic: Any, wss_target: Any, ca_path: str) -> None:
    proxy = squid_basic.url("http", USER, BASIC_PASSWORD)
    code, lines = run(wss_target.url("/echo"), proxies={"wss": proxy}, verify=ca_path, timeout=10)
    assert code == 0, lines
    assert stages(lines) == [
        (stage, "ok") for stage in ("proxy", "dns", "tcp", "proxy_connect", "tls", "handshake", "ping")
    ]
    text = "\n".join(lines)
    assert BASIC_PASSWORD not in text
    assert "proxy: ok" in lines[0] and "(proxies['wss'])" in lines[0]
    assert "authentication offered: basic; used: Basic" in text
    assert f"verified by CA bundle {ca_path}" in text and "TLSv1." in text
    assert "101 Switching Protocols" in text and "extensions permessage-deflate" in text


def test_refused_port_fails_at_tcp(refused_port: int) -> None:
    code, lines = run(f"ws://127.0.0.1:{refused_port}/", proxies={}, timeout=10)
    assert code == 1
    assert stages(lines) == [("proxy", "ok"), ("dns", "ok"), ("tcp", "FAILED")]
    assert "connection refused" in lines[2]
    assert lines[3].startswith("hint: ") and "check the host and port" in lines[3]
    assert "DIRECT (proxies['ws'] is empty)" in lines[0] or "DIRECT (no proxies entry for ws:// (direct))" in lines[0]


def test_wrong_ca_fails_at_tls(wss_target: Any, other_ca_path: str) -> None:
    code, lines = run(wss_target.url("/echo"), proxies={}, verify=other_ca_path, timeout=10)
    assert code == 1
    assert stages(lines) == [("proxy", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "FAILED")]
    assert "certificate verification failed" in lines[3]
    assert "--ca" in lines[4] and "verify=" in lines[4]


def test_407_without_credentials_fails_at_proxy_connect(squid_basic: Any, ws_target: Any) -> None:
    code, lines = run(ws_target.url("/echo"), proxies={"ws": squid_basic.url()}, timeout=10)
    assert code == 1
    assert stages(lines) == [("proxy", "ok"), ("dns", "ok"), ("tcp", "ok"), ("proxy_connect", "FAILED")]
    assert "407" in lines[3]
    assert "the proxy offered basic; give credentials in the proxy URL" in lines[4]


def test_non_101_fails_at_handshake(squid_basic: Any, ws_target: Any) -> None:
    """squid itself is no WebSocket server: a direct GET to it answers 400."""
    code, lines = run(f"ws://127.0.0.1:{squid_basic.port}/", proxies={}, timeout=10)
    assert code == 1
    assert stages(lines)[-1] == ("handshake", "FAILED")
    assert "instead of 101" in lines[-1]


def _407(*challenges: str) -> ProxyAuthenticationRequired:
    headers = Headers([("Proxy-Authenticate", c) for c in challenges])
    return ProxyAuthenticationRequired("407", response=Response(407, "Proxy Authentication Required", headers))


def test_407_hints_name_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "spnego_available", lambda: False)
    assert "install python-wsclient[kerberos]" in diagnose._hint("proxy_connect", _407("Negotiate"), "http://p:1", 10)
    assert "install python-wsclient[ntlm]" in diagnose._hint("proxy_connect", _407("NTLM", "Negotiate"), "http://p:1", 10)
    refused = diagnose._hint("proxy_connect", _407('Basic realm="x"'), "http://p:1", 10, has_user=True)
    assert "refused the credentials" in refused
