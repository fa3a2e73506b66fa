"""``WebSocketClient``: its events, ``connect(wait=False)``, ``abort()``, and non-101 answers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from rawserver import finish_within, read_request, signal, wait_eof

import wsclient
from wsclient import ConnectFailed, HandshakeError, InvalidStatus


class Recorder:
    """Collects a client's events and lets the test wait for the end of an opening."""

    def __init__(self, client: wsclient.WebSocketClient) -> None:
        self.connected: list[Any] = []
        self.failed: list[Any] = []
        self.responses: list[tuple[Any, Any]] = []
        self.ended = threading.Event()
        client.on("connect", self._on_connect)
        client.on("connect_failed", self._on_failed)

    def listen_http_response(self, client: wsclient.WebSocketClient) -> None:
        client.on("http_response", self._on_response)

    def _on_connect(self, connection: Any) -> None:
        self.connected.append(connection)
        self.ended.set()

    def _on_failed(self, error: Any) -> None:
        self.failed.append(error)
        self.ended.set()

    def _on_response(self, response: Any, client: Any) -> None:
        self.responses.append((response, client))
        self.ended.set()


def test_connect_event_gives_the_connection(peer: Any) -> None:
    client = wsclient.WebSocketClient(close_timeout=3)
    rec = Recorder(client)
    options = {"verify": peer.ca_path} if peer.scheme == "wss" else {}
    ws = client.connect(peer.url("/echo"), request_options=options)
    assert ws is not None
    with ws:
        assert rec.ended.wait(5)
        assert rec.connected == [ws]
        assert rec.failed == []
        ws.send("via client")
        assert ws.recv(timeout=5) == "via client"


def test_connect_wait_false_reports_through_events(peer: Any) -> None:
    client = wsclient.WebSocketClient(close_timeout=3)
    rec = Recorder(client)
    options = {"verify": peer.ca_path} if peer.scheme == "wss" else {}
    assert client.connect(peer.url("/echo"), request_options=options, wait=False) is None
    assert rec.ended.wait(10)
    assert rec.failed == []
    (ws,) = rec.connected
    with ws:
        ws.send("async open")
        assert ws.recv(timeout=5) == "async open"


def test_connect_failed_event_on_refused_port(refused_port: int) -> None:
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    with pytest.raises(ConnectFailed) as info:
        client.connect(f"ws://127.0.0.1:{refused_port}/", request_options={"timeout": 5})
    assert rec.failed == [info.value]
    assert str(info.value)
    assert rec.connected == []


def test_connect_wait_false_refused_port_fires_connect_failed(refused_port: int) -> None:
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    assert client.connect(f"ws://127.0.0.1:{refused_port}/", wait=False) is None
    assert rec.ended.wait(10)
    assert rec.connected == []
    (error,) = rec.failed
    assert isinstance(error, ConnectFailed)
    assert isinstance(error.__cause__, OSError) or error.__cause__ is not None


@pytest.mark.parametrize("status", [403, 500])
def test_non_101_answer_raises_invalid_status(httpserver: Any, status: int) -> None:
    httpserver.expect_request("/ws").respond_with_data(
        "go away", status=status, headers={"X-Why": "testing"}, content_type="text/plain"
    )
    url = httpserver.url_for("/ws").replace("http://", "ws://")
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    with pytest.raises(InvalidStatus) as info:
        client.connect(url, request_options={"timeout": 5})
    assert isinstance(info.value, HandshakeError)
    response = info.value.response
    assert response.status == status
    assert response.headers["x-why"] == "testing"
    assert response.body == b"go away"
    assert rec.failed == [info.value]
    # The request was a real WebSocket upgrade request.
    (request, _response) = httpserver.log[0]
    assert request.headers["Upgrade"].lower() == "websocket"
    assert request.headers["Sec-WebSocket-Version"] == "13"


def test_non_101_with_front_door(httpserver: Any) -> None:
    httpserver.expect_request("/ws").respond_with_data("nope", status=403)
    url = httpserver.url_for("/ws").replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(url, timeout=5)
    assert info.value.response.status == 403
    assert "403" in str(info.value)


def test_http_response_event_on_redirect_suppresses_connect_failed(httpserver: Any) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": "ws://127.0.0.1:1/new"}
    )
    url = httpserver.url_for("/old").replace("http://", "ws://")
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    rec.listen_http_response(client)
    with pytest.raises(InvalidStatus):
        client.connect(url, request_options={"timeout": 5})
    assert rec.failed == []
    assert rec.connected == []
    ((response, passed_client),) = rec.responses
    assert passed_client is client
    assert response.status == 302
    assert response.headers["location"] == "ws://127.0.0.1:1/new"
    assert response.reason == "FOUND"


def test_http_response_event_with_wait_false(httpserver: Any) -> None:
    httpserver.expect_request("/teapot").respond_with_data("short and stout", status=418)
    url = httpserver.url_for("/teapot").replace("http://", "ws://")
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    rec.listen_http_response(client)
    assert client.connect(url, wait=False) is None
    assert rec.ended.wait(10)
    assert rec.failed == []
    ((response, _client),) = rec.responses
    assert response.status == 418
    assert response.body == b"short and stout"


def test_large_error_body_is_bounded(httpserver: Any) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * (4 << 20), status=500)
    url = httpserver.url_for("/big").replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(url, timeout=10)
    assert info.value.response.status == 500
    assert len(info.value.response.body) < (4 << 20)


def test_abort_from_another_thread(raw_server: Any) -> None:
    """The server reads the request and never answers; abort() ends the opening."""
    request_read = threading.Event()
    server = raw_server([read_request(), signal(request_read), wait_eof(10)], handshake=False)
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    outcome: list[BaseException] = []

    def opener() -> None:
        try:
            client.connect(server.url(), request_options={"timeout": 30})
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=opener, name="test-opener")
    t.start()
    assert request_read.wait(5)
    finish_within(client.abort)
    t.join(5)
    assert not t.is_alive(), "connect(wait=True) still blocked after abort()"
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectFailed)
    assert "abort" in str(outcome[0]).lower()
    assert rec.failed == outcome
    assert rec.connected == []
    server.join()  # the server saw the socket close


def test_abort_with_wait_false(raw_server: Any) -> None:
    request_read = threading.Event()
    server = raw_server([read_request(), signal(request_read), wait_eof(10)], handshake=False)
    client = wsclient.WebSocketClient()
    rec = Recorder(client)
    assert client.connect(server.url(), request_options={"timeout": 30}, wait=False) is None
    assert request_read.wait(5)
    finish_within(client.abort)
    assert rec.ended.wait(5)
    (error,) = rec.failed
    assert isinstance(error, ConnectFailed)
    server.join()


def test_abort_after_connect_does_nothing(plain_peer: Any) -> None:
    client = wsclient.WebSocketClient(close_timeout=3)
    rec = Recorder(client)
    ws = client.connect(plain_peer.url("/echo"))
    assert ws is not None
    with ws:
        finish_within(client.abort)
        assert rec.failed == []
        ws.send("still fine")
        assert ws.recv(timeout=5) == "still fine"
        assert ws.connected


def test_abort_without_attempt_does_nothing() -> None:
    finish_within(wsclient.WebSocketClient().abort)


def test_client_reconnects_after_close(plain_peer: Any) -> None:
    client = wsclient.WebSocketClient(close_timeout=3)
    rec = Recorder(client)
    for i in range(2):
        ws = client.connect(plain_peer.url("/echo"))
        assert ws is not None
        with ws:
            ws.send(f"round {i}")
            assert ws.recv(timeout=5) == f"round {i}"
    assert len(rec.connected) == 2
