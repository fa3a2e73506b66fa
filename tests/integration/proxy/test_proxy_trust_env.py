"""The TLS to an https:// proxy follows the same trust rules as the target's (issue 9)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from proxypeers import PPROXY_PASSWORD, USER

import wsclient
from wsclient import ConnectFailed

CA_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_https_proxy_verified_through_the_environment(
    variable: str, monkeypatch: pytest.MonkeyPatch, pproxy: Any, proxy_tls: Any, ws_target: Any
) -> None:
    proxy = pproxy.url_for("https", "https", USER, PPROXY_PASSWORD)
    path = f"/trust-env-{time.monotonic_ns()}"
    # certifi alone does not trust the proxy's certificate.
    with pytest.raises(ConnectFailed):
        wsclient.connect(ws_target.url(path), proxies={"ws": proxy}, timeout=10)
    monkeypatch.setenv(variable, proxy_tls.ca_path)
    with wsclient.connect(ws_target.url(path), proxies={"ws": proxy}, timeout=10) as ws:
        ws.send("via a verified proxy")
        assert ws.recv(timeout=10) == "via a verified proxy"
    # trust_env=False ignores the variable (and the proxy must then come from proxies=).
    with pytest.raises(ConnectFailed):
        wsclient.connect(ws_target.url(path), proxies={"ws": proxy}, trust_env=False, timeout=10)
