"""The opening handshake against real servers: subprotocols, headers, origin, addresses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ipv6_loopback_available
from rawserver import serve_until_close

import wsclient


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["chat"], "chat"),
        (["x-unknown", "chat", "superchat"], "superchat"),  # the server's preference wins
        (["x-unknown"], None),
        (None, None),
    ],
)
def test_subprotocol_negotiation(peer: Any, offered: list[str] | None, chosen: str | None) -> None:
    url = peer.url("/headers")
    with wsclient.connect(url, subprotocols=offered, **peer.client_kwargs) as ws:
        assert ws.subprotocol == chosen
        info = json.loads(ws.recv(timeout=5))
    assert info["protocol"] == chosen
    if offered:
        sent = [p.strip() for p in info["headers"]["sec-websocket-protocol"].split(",")]
        assert sent == offered
    else:
        assert "sec-websocket-protocol" not in info["headers"]
    assert peer.wait_event("connection", url)["protocol"] == chosen


def test_headers_and_origin_reach_the_server(peer: Any) -> None:
    headers = {"Authorization": "Bearer s3cret", "X-Custom-Thing": "value 1"}
    with wsclient.connect(
        peer.url("/headers"), headers=headers, origin="https://app.example", **peer.client_kwargs
    ) as ws:
        info = json.loads(ws.recv(timeout=5))
    got = info["headers"]
    assert got["authorization"] == "Bearer s3cret"
    assert got["x-custom-thing"] == "value 1"
    assert got["origin"] == "https://app.example"
    assert got["sec-websocket-version"] == "13"
    assert got["upgrade"].lower() == "websocket"
    assert info["path"].startswith("/headers?cid=")


def test_no_origin_unless_given(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/headers"), **plain_peer.client_kwargs) as ws:
        info = json.loads(ws.recv(timeout=5))
    assert "origin" not in info["headers"]
    assert "sec-websocket-origin" not in info["headers"]


def test_headers_as_pairs_and_host_header(plain_peer: Any) -> None:
    url = plain_peer.url("/headers")
    with wsclient.connect(url, headers=[("X-One", "1"), ("X-Two", "2")], **plain_peer.client_kwargs) as ws:
        info = json.loads(ws.recv(timeout=5))
    assert info["headers"]["x-one"] == "1"
    assert info["headers"]["x-two"] == "2"
    assert info["headers"]["host"] == f"{plain_peer.host}:{plain_peer.port}"


def test_query_string_reaches_the_server(plain_peer: Any) -> None:
    url = plain_peer.url("/headers", token="a b&c", n=1)
    with wsclient.connect(url, **plain_peer.client_kwargs) as ws:
        info = json.loads(ws.recv(timeout=5))
    assert info["path"] == url.split(str(plain_peer.port), 1)[1]


def test_websocket_client_connect_with_protocols_and_origin(plain_peer: Any) -> None:
    client = wsclient.WebSocketClient(close_timeout=3)
    ws = client.connect(
        plain_peer.url("/headers"), protocols=["chat"], origin="http://seed.example", headers={"X-A": "b"}
    )
    assert ws is not None
    with ws:
        assert ws.subprotocol == "chat"
        info = json.loads(ws.recv(timeout=5))
    assert info["headers"]["origin"] == "http://seed.example"
    assert info["headers"]["x-a"] == "b"


def test_version_8_sends_sec_websocket_origin(raw_server: Any) -> None:
    server = raw_server([serve_until_close()])
    with wsclient.connect(
        server.url("/v8"), origin="http://old.example", web_socket_version=8, timeout=5
    ) as ws:
        assert ws.web_socket_version == 8
    server.join()
    headers = server.connection.request_headers
    assert headers["sec-websocket-version"] == "8"
    assert headers["sec-websocket-origin"] == "http://old.example"
    assert "origin" not in headers


def test_request_head_is_well_formed(raw_server: Any) -> None:
    server = raw_server([serve_until_close()])
    with wsclient.connect(server.url("/path?q=1"), timeout=5, compression=None):
        pass
    server.join()
    conn = server.connection
    assert conn.request_line == "GET /path?q=1 HTTP/1.1"
    headers = conn.request_headers
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["upgrade"].lower() == "websocket"
    assert "upgrade" in [t.strip().lower() for t in headers["connection"].split(",")]
    assert headers["sec-websocket-version"] == "13"
    import base64

    assert len(base64.b64decode(headers["sec-websocket-key"])) == 16
    assert "sec-websocket-extensions" not in headers


def test_keys_differ_between_connections(raw_server: Any) -> None:
    server = raw_server([serve_until_close()], connections=2)
    for _ in range(2):
        with wsclient.connect(server.url(), timeout=5):
            pass
    server.join()
    keys = {c.request_headers["sec-websocket-key"] for c in server.connections}
    assert len(keys) == 2


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("tls", [False, True])
def test_ipv6_loopback(websockets_server_factory: Any, server_tls: Any, tls: bool) -> None:
    server = websockets_server_factory(host="::1", tls=server_tls if tls else None)
    url = server.url("/echo")
    assert url.startswith(("ws://[::1]:", "wss://[::1]:"))
    with wsclient.connect(url, **server.client_kwargs) as ws:
        ws.send("over ipv6")
        assert ws.recv(timeout=5) == "over ipv6"
        address = ws.remote_address
        assert address is not None and address[0] == "::1"


def test_wss_by_hostname(websockets_tls_server: Any, ca_path: str) -> None:
    """The certificate names localhost too: a hostname URL verifies (SNI and hostname check)."""
    url = websockets_tls_server.url("/headers").replace("127.0.0.1", "localhost")
    with wsclient.connect(url, verify=ca_path, timeout=5) as ws:
        info = json.loads(ws.recv(timeout=5))
    assert info["headers"]["host"] == f"localhost:{websockets_tls_server.port}"


def test_verify_false_accepts_any_certificate(websockets_server_factory: Any, wrong_host_tls: Any) -> None:
    server = websockets_server_factory(tls=wrong_host_tls)
    with wsclient.connect(server.url("/echo"), verify=False, timeout=5) as ws:
        ws.send("insecure but working")
        assert ws.recv(timeout=5) == "insecure but working"


def test_verify_with_ssl_context(websockets_tls_server: Any, ca_path: str) -> None:
    import ssl

    context = ssl.create_default_context(cafile=ca_path)
    with wsclient.connect(websockets_tls_server.url("/echo"), verify=context, timeout=5) as ws:
        ws.send("ctx")
        assert ws.recv(timeout=5) == "ctx"
