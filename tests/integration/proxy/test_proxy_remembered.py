"""Remembered proxy schemes: after a proxy accepted a scheme, the next CONNECT to it answers at
once (Basic and Digest preemptively, NTLM and Negotiate starting their handshake), saving the
407 round trip; a refused or stale preemptive value falls back to the normal 407 flow once.

The proof is squid's access log: each request carries a marker header (``X-Wsclient-Test``,
logged as ``xtest=``), and every 407 squid sends is a ``TCP_DENIED/407`` line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from proxypeers import BASIC_PASSWORD, DIGEST_PASSWORD, USER

import wsclient
from wsclient import ProxyAuthenticationRequired
from wsclient.proxy import auth as auth_mod
from wsclient.proxy.url import parse_proxy_url


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    auth_mod.forget_proxy_schemes()
    yield
    auth_mod.forget_proxy_schemes()


def _connect(squid: Any, target: Any, proxy_url: str) -> str:
    """One connection with a fresh marker; returns the marker."""
    marker = f"m{time.monotonic_ns()}"
    with wsclient.connect(
        target.url(f"/remembered-{marker}"),
        proxies={"ws": proxy_url},
        request_options={"proxy_headers": {"X-Wsclient-Test": marker}},
        timeout=10,
    ) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
    return marker


def _denied(squid: Any, marker: str) -> int:
    return sum(1 for line in squid.access_lines() if f"xtest={marker}" in line and "/407 " in line)


def _tunnels(squid: Any, marker: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = sum(1 for line in squid.access_lines() if f"xtest={marker}" in line and "TCP_TUNNEL/200" in line)
        if count:
            return count
        time.sleep(0.05)
    return 0


def test_basic_is_sent_at_once_the_second_time(squid_basic: Any, ws_target: Any) -> None:
    url = squid_basic.url("http", USER, BASIC_PASSWORD)
    first = _connect(squid_basic, ws_target, url)
    second = _connect(squid_basic, ws_target, url)
    third = _connect(squid_basic, ws_target, url)
    assert _tunnels(squid_basic, first) == _tunnels(squid_basic, second) == _tunnels(squid_basic, third) == 1
    assert _denied(squid_basic, first) == 1
    assert _denied(squid_basic, second) == 0
    assert _denied(squid_basic, third) == 0


def test_digest_is_sent_at_once_with_increasing_nonce_counts(squid_digest: Any, ws_target: Any) -> None:
    url = squid_digest.url("http", USER, DIGEST_PASSWORD)
    markers = [_connect(squid_digest, ws_target, url) for _ in range(4)]
    assert [_tunnels(squid_digest, m) for m in markers] == [1, 1, 1, 1]
    assert [_denied(squid_digest, m) for m in markers] == [1, 0, 0, 0]


def test_ntlm_starts_its_handshake_at_once(squid_ntlm: Any, ws_target: Any) -> None:
    url = squid_ntlm.url("http", f"CORP\\{USER}", "any-password")
    first = _connect(squid_ntlm, ws_target, url)
    second = _connect(squid_ntlm, ws_target, url)
    assert _tunnels(squid_ntlm, first) == _tunnels(squid_ntlm, second) == 1
    # First time: a bare 407, then the 407 carrying the challenge; then only the challenge.
    assert _denied(squid_ntlm, first) == 2
    assert _denied(squid_ntlm, second) == 1


def test_kerberos_negotiate_is_sent_at_once(
    squid_kerberos: Any, krb5_realm: Any, monkeypatch: pytest.MonkeyPatch, ws_target: Any
) -> None:
    for name, value in krb5_realm.env().items():
        monkeypatch.setenv(name, value)
    url = f"http://localhost:{squid_kerberos.port}"
    first = _connect(squid_kerberos, ws_target, url)
    second = _connect(squid_kerberos, ws_target, url)
    assert _tunnels(squid_kerberos, first) == _tunnels(squid_kerberos, second) == 1
    assert _denied(squid_kerberos, first) == 1
    assert _denied(squid_kerberos, second) == 0


def test_a_stale_digest_nonce_falls_back_to_the_407_once(squid_digest: Any, ws_target: Any) -> None:
    url = squid_digest.url("http", USER, DIGEST_PASSWORD)
    _connect(squid_digest, ws_target, url)
    # Make the remembered nonce one squid never issued (as after a squid restart).
    key = auth_mod._memory_key(parse_proxy_url(url))
    memory = auth_mod._remembered[key]
    assert memory.challenge is not None
    params = dict(memory.challenge.params, nonce="bm90LWEtcmVhbC1ub25jZQ")
    memory.challenge = auth_mod.Challenge("digest", None, params)
    marker = _connect(squid_digest, ws_target, url)
    assert _tunnels(squid_digest, marker) == 1
    # The preemptive value is refused (one 407), whose fresh challenge the normal flow answers.
    assert _denied(squid_digest, marker) == 1
    after = _connect(squid_digest, ws_target, url)
    assert _denied(squid_digest, after) == 0  # the fresh nonce is remembered


def test_refused_preemptive_credentials_fall_back_once_then_fail(squid_basic: Any, ws_target: Any) -> None:
    _connect(squid_basic, ws_target, squid_basic.url("http", USER, BASIC_PASSWORD))
    marker = f"m{time.monotonic_ns()}"
    with pytest.raises(ProxyAuthenticationRequired, match="Basic credentials refused"):
        wsclient.connect(
            ws_target.url(f"/remembered-{marker}"),
            proxies={"ws": squid_basic.url("http", USER, "wrong password")},
            request_options={"proxy_headers": {"X-Wsclient-Test": marker}},
            timeout=10,
        )
    deadline = time.monotonic() + 5
    while _denied(squid_basic, marker) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _denied(squid_basic, marker) == 2  # the preemptive try, then one normal try
    assert auth_mod._remembered == {}


def test_memory_is_per_proxy_and_user(squid_basic: Any, squid_digest: Any, ws_target: Any) -> None:
    _connect(squid_basic, ws_target, squid_basic.url("http", USER, BASIC_PASSWORD))
    # Another user on the same proxy is not answered preemptively.
    other = parse_proxy_url(squid_basic.url("http", "bob", "pw"))
    assert auth_mod.preemptive_authenticator(other, "h:1") is None
    # Nor is the same user on another proxy.
    assert auth_mod.preemptive_authenticator(parse_proxy_url(squid_digest.url("http", USER, "x")), "h:1") is None
    same = parse_proxy_url(squid_basic.url("http", USER, BASIC_PASSWORD))
    found = auth_mod.preemptive_authenticator(same, "h:1")
    assert found is not None and found[1].value.startswith("Basic ")
