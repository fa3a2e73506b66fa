"""NTLM and Negotiate against a proxy whose check is pyspnego's acceptor (it verifies the
password, unlike squid's ntlm_fake_auth)."""

from __future__ import annotations

from typing import Any

import pytest
from proxypeers import NTLM_DOMAIN, NTLM_PASSWORD, USER, deadline, echo_roundtrip

from wsclient.exceptions import ProxyAuthenticationRequired
from wsclient.proxy import open_tunnel, parse_proxy_url


@pytest.fixture(params=["ntlm_proxy", "negotiate_proxy"])
def spnego_proxy(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def tunnel(url: str, target: Any, options: Any) -> Any:
    return open_tunnel(parse_proxy_url(url), target.host, target.port, deadline=deadline(), options=options())


def test_right_password(spnego_proxy: Any, tcp_target: Any, options: Any) -> None:
    """A domain user, written ``DOMAIN%5Cuser`` in the proxy URL."""
    before = len(spnego_proxy.users)
    stream = tunnel(spnego_proxy.url(f"{NTLM_DOMAIN}\\{USER}", NTLM_PASSWORD), tcp_target, options)
    try:
        echo_roundtrip(stream, b"ntlm verified")
    finally:
        stream.close()
    assert spnego_proxy.users[before].lower() == f"{NTLM_DOMAIN}\\{USER}".lower()
    # The type-1 and type-3 legs went over one connection; the password never in clear.
    assert all(NTLM_PASSWORD.encode() not in request for request in spnego_proxy.requests)


def test_wrong_password(spnego_proxy: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired) as info:
        tunnel(spnego_proxy.url(f"{NTLM_DOMAIN}\\{USER}", "Wrong-Pass-9"), tcp_target, options)
    assert "credentials refused" in str(info.value)
    assert "Wrong-Pass-9" not in str(info.value)
    assert info.value.response.headers["Proxy-Authenticate"] == spnego_proxy.scheme


def test_no_credentials(ntlm_proxy: Any, tcp_target: Any, options: Any) -> None:
    with pytest.raises(ProxyAuthenticationRequired, match="give credentials in the proxy URL"):
        tunnel(ntlm_proxy.url(None, None), tcp_target, options)
