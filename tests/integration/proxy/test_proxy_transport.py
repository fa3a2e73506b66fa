"""``open_stream`` over real proxies: ``proxy_cert`` (a client certificate for the TLS to an
https:// proxy), failover between candidates, the trace hook, and typed ``request_options``."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from proxypeers import BASIC_PASSWORD, USER, echo_roundtrip

import wsclient
from wsclient import ProxyAuthenticationRequired, ProxyError
from wsclient._net import Deadline
from wsclient.proxy import ProxySelection, ProxyURL
from wsclient.transport import open_stream
from wsclient.transport.options import parse_request_options
from wsclient.uri import parse_uri


def _options(**request_options: Any) -> Any:
    return parse_request_options(request_options, tls_options={}, disable_nagle_algorithm=True, default_timeout=10)


class ClientCertProxy:
    """An https:// proxy that requires a client certificate, answers CONNECT with 200 and
    then echoes (it is its own target). Records the subject of each client certificate."""

    def __init__(self, tls_ca: Any) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_ca.issue_cert("127.0.0.1").configure_cert(self.context)
        tls_ca.configure_trust(self.context)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.subjects: list[str] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._serve, name="test-client-cert-proxy", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            raw.settimeout(10)
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    cert = conn.getpeercert() or {}
                    self.subjects.append(str(cert.get("subjectAltName")))
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    while data := conn.recv(4096):
                        conn.sendall(data)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(str(exc))
            finally:
                raw.close()

    def stop(self) -> None:
        self.listener.close()
        self._thread.join(5)


@pytest.fixture
def client_cert_proxy(tls_ca: Any) -> Iterator[ClientCertProxy]:
    proxy = ClientCertProxy(tls_ca)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def client_cert(tls_ca: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(CA path, client chain path, client key path) from the test CA."""
    folder = tmp_path_factory.mktemp("client-cert")
    issued = tls_ca.issue_cert("wsclient-test-client@example.org")
    chain, key, ca = folder / "chain.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    tls_ca.cert_pem.write_to_path(str(ca))
    return str(ca), str(chain), str(key)


def test_proxy_cert_is_presented_to_an_https_proxy(
    client_cert_proxy: ClientCertProxy, client_cert: tuple[str, str, str]
) -> None:
    ca, chain, key = client_cert
    options = _options(
        proxy=f"https://127.0.0.1:{client_cert_proxy.port}", proxy_verify=ca, proxy_cert=(chain, key), verify=False
    )
    stream = open_stream(parse_uri("ws://target.invalid:80/"), options, Deadline(10))
    try:
        assert isinstance(stream, ssl.SSLSocket)
        echo_roundtrip(stream, b"through a proxy that wants a client certificate")
    finally:
        stream.close()
    assert "wsclient-test-client@example.org" in client_cert_proxy.subjects[0]


def test_without_proxy_cert_the_proxy_refuses(
    client_cert_proxy: ClientCertProxy, client_cert: tuple[str, str, str]
) -> None:
    ca, _, _ = client_cert
    options = _options(proxy=f"https://127.0.0.1:{client_cert_proxy.port}", proxy_verify=ca)
    with pytest.raises(ProxyError, match=r"proxy https://127\.0\.0\.1"):
        open_stream(parse_uri("ws://target.invalid:80/"), options, Deadline(10))
    assert client_cert_proxy.subjects == []


# --------------------------------------------------------------------------- failover


def _candidates(monkeypatch: pytest.MonkeyPatch, *candidates: ProxyURL | None) -> None:
    """Make every selection return these candidates (as a PAC file would)."""

    def fake(*args: Any, **kwargs: Any) -> ProxySelection:
        return ProxySelection(tuple(candidates), "test candidates")

    monkeypatch.setattr("wsclient.transport.select_proxy", fake)


def test_unreachable_candidates_give_way_to_the_next(
    monkeypatch: pytest.MonkeyPatch, refused_port: int, squid_open: Any, ws_target: Any
) -> None:
    squid = ProxyURL("http", "127.0.0.1", squid_open.port)
    _candidates(monkeypatch, ProxyURL("http", "127.0.0.1", refused_port), ProxyURL("socks5", "127.0.0.1", refused_port), squid)
    with wsclient.connect(ws_target.url("/echo"), timeout=10) as ws:
        assert ws.remote_address[1] == squid_open.port
        ws.send("failover")
        assert ws.recv(timeout=5) == "failover"


def test_direct_is_a_candidate_too(monkeypatch: pytest.MonkeyPatch, refused_port: int, ws_target: Any) -> None:
    _candidates(monkeypatch, ProxyURL("http", "127.0.0.1", refused_port), None)
    with wsclient.connect(ws_target.url("/echo"), timeout=10) as ws:
        assert ws.remote_address[1] == ws_target.port


def test_a_silent_candidate_gets_only_its_share_of_the_timeout(
    monkeypatch: pytest.MonkeyPatch, ws_target: Any
) -> None:
    # A listener whose backlog is full never completes a TCP connection: silent at TCP.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(silent.getsockname())
            fillers.append(filler)
        _candidates(monkeypatch, ProxyURL("http", *silent.getsockname()), None)
        started = time.monotonic()
        with wsclient.connect(ws_target.url("/echo"), timeout=4) as ws:
            assert ws.remote_address[1] == ws_target.port
        # The silent proxy got half of the 4 s, the direct connection the rest.
        assert 1.5 < time.monotonic() - started < 4 + 1.5
    finally:
        for filler in fillers:
            filler.close()
        silent.close()


def test_a_407_is_final(monkeypatch: pytest.MonkeyPatch, squid_basic: Any, ws_target: Any) -> None:
    _candidates(monkeypatch, ProxyURL("http", "127.0.0.1", squid_basic.port), None)
    with pytest.raises(ProxyAuthenticationRequired):
        wsclient.connect(ws_target.url("/echo"), timeout=10)


def test_all_candidates_unreachable_reports_the_last(monkeypatch: pytest.MonkeyPatch, refused_port: int) -> None:
    _candidates(monkeypatch, ProxyURL("http", "127.0.0.1", refused_port), None)
    with pytest.raises(wsclient.ConnectFailed, match="connection refused"):
        wsclient.connect(f"ws://127.0.0.1:{refused_port}/", timeout=10)


# --------------------------------------------------------------------------- trace


def test_trace_through_an_authenticating_proxy(squid_basic: Any, wss_target: Any, ca_path: str) -> None:
    stages: list[tuple[str, dict[str, Any]]] = []
    url = squid_basic.url("http", USER, BASIC_PASSWORD)
    options = _options(proxies={"wss": url}, verify=ca_path)
    stream = open_stream(
        parse_uri(wss_target.url("/echo")), options, Deadline(10), trace=lambda s, i: stages.append((s, i))
    )
    stream.close()
    assert [s for s, _ in stages] == ["proxy", "dns", "tcp", "proxy_connect", "tls"]
    info = dict(stages)
    assert info["proxy"]["source"] == "proxies['wss']" and BASIC_PASSWORD not in repr(info["proxy"])
    assert info["proxy_connect"]["status"] == 200
    assert info["proxy_connect"]["schemes_offered"] == ["basic"] and info["proxy_connect"]["scheme_used"] == "Basic"
    assert info["tls"]["version"].startswith("TLS") and "CA_PATH" not in info["tls"]["trust_source"]
    assert ca_path in info["tls"]["trust_source"] and info["tls"]["not_after"]
    assert all(i["seconds"] >= 0 for s, i in stages if s != "proxy")


def test_trace_through_socks(dante_open: Any, ws_target: Any) -> None:
    """PySocks connects and negotiates in one step: "proxy_connect" stands for both."""
    stages: list[tuple[str, dict[str, Any]]] = []
    options = _options(proxy=dante_open.url("socks5h"))
    stream = open_stream(
        parse_uri(ws_target.url("/echo")), options, Deadline(10), trace=lambda s, i: stages.append((s, i))
    )
    stream.close()
    assert [s for s, _ in stages] == ["proxy", "dns", "proxy_connect"]
    info = dict(stages)
    assert info["dns"]["host"] == "127.0.0.1"  # the proxy's name: the target's is resolved remotely
    assert info["proxy_connect"]["socks"] == "SOCKS5" and info["proxy_connect"]["address"][1] == dante_open.port


def test_no_trace_no_cost(monkeypatch: pytest.MonkeyPatch, wss_target: Any, ca_path: str) -> None:
    """Without a trace nothing builds trace information (tls_info is never called)."""

    def boom(*args: Any) -> Any:
        raise AssertionError("tls_info called without a trace")

    monkeypatch.setattr("wsclient.transport.tls_info", boom)
    with wsclient.connect(wss_target.url("/echo"), timeout=10, proxies={}, verify=ca_path) as ws:
        assert ws.connected


def test_unknown_request_option_is_type_error(ws_target: Any) -> None:
    client = wsclient.WebSocketClient()
    with pytest.raises(TypeError, match="'proxy_verfy'"):
        client.connect(ws_target.url("/echo"), request_options={"proxy_verfy": False})


def test_unknown_proxies_key_is_value_error(ws_target: Any) -> None:
    with pytest.raises(ValueError, match="'wws'"):
        wsclient.connect(ws_target.url("/echo"), proxies={"wws": "http://127.0.0.1:1"})
