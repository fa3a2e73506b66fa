"""Control frames against real servers: ping/pong events, the automatic pong, keepalive."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from rawserver import Op, echo_close, expect_close, finish_within, serve_until_close

import wsclient
from wsclient import ConnectionClosedError


def _sync(ws: Any) -> None:
    """Round-trip one message: whatever the reader did before it is done (and was sent)."""
    ws.send("sync")
    assert ws.recv(timeout=5) == "sync"


def _server_pongs(ws: Any) -> list[str]:
    _sync(ws)
    ws.send("pongs?")
    return json.loads(ws.recv(timeout=5))  # type: ignore[no-any-return]


def test_ping_gets_pong_event(peer: Any) -> None:
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        pongs: list[bytes] = []
        got = threading.Event()

        @ws.on("pong")
        def on_pong(data: bytes) -> None:
            pongs.append(data)
            got.set()

        ws.ping(b"are you there")
        assert got.wait(5)
        assert pongs == [b"are you there"]
        ws.ping()  # an empty ping is fine too
        _sync(ws)


def test_server_sees_client_ping(peer: Any) -> None:
    url = peer.url("/echo")
    with wsclient.connect(url, **peer.client_kwargs) as ws:
        ws.ping(b"\x01\x02")
        record = peer.wait_event("ping", url)
        assert record["data"] == "0102"


def test_ping_payload_limit(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs) as ws:
        ws.ping(b"x" * 125)
        with pytest.raises(ValueError):
            ws.ping(b"x" * 126)
        with pytest.raises(ValueError):
            ws.pong(b"x" * 126)
        _sync(ws)
        assert ws.connected


def test_server_ping_fires_ping_event_and_automatic_pong(peer: Any) -> None:
    url = peer.url("/echo")
    with wsclient.connect(url, **peer.client_kwargs) as ws:
        pings: list[bytes] = []
        got = threading.Event()

        @ws.on("ping")
        def on_ping(data: bytes, cancel: Any) -> None:
            pings.append(data)
            got.set()

        ws.send("ping:hello")
        assert got.wait(5)
        assert pings == [b"hello"]
        assert _server_pongs(ws) == [b"hello".hex()]


def test_ping_listener_cancel_suppresses_automatic_pong(peer: Any) -> None:
    url = peer.url("/echo")
    with wsclient.connect(url, **peer.client_kwargs) as ws:
        got = threading.Event()

        @ws.on("ping")
        def on_ping(data: bytes, cancel: Any) -> None:
            cancel()
            got.set()

        ws.send("ping:no answer please")
        assert got.wait(5)
        assert _server_pongs(ws) == []
        # The application may answer itself.
        ws.pong(b"manual")
        assert _server_pongs(ws) == [b"manual".hex()]


def test_unsolicited_pong_is_accepted_by_servers(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs) as ws:
        ws.pong(b"heartbeat")
        assert _server_pongs(ws) == [b"heartbeat".hex()]


def test_keepalive_pings_reach_the_server(peer: Any) -> None:
    url = peer.url("/echo")
    kwargs = {**peer.client_kwargs, "ping_interval": 0.05, "ping_timeout": 5}
    with wsclient.connect(url, **kwargs) as ws:
        peer.wait_event("ping", url, predicate=lambda r: len(peer.events.records("ping", r["cid"])) >= 3)
        # The server answered every ping, so the connection is still open.
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
        assert ws.connected


def test_keepalive_disabled_sends_no_ping(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/echo"), ping_interval=None, **plain_peer.client_kwargs) as ws:
        _sync(ws)
        ws.send("pings?")
        assert json.loads(ws.recv(timeout=5)) == []


def test_keepalive_fails_connection_when_node_never_pongs(node_server_factory: Any) -> None:
    server = node_server_factory(auto_pong=False)
    url = server.url("/echo")
    ws = wsclient.connect(url, ping_interval=0.1, ping_timeout=0.3, close_timeout=1)
    closes: list[tuple[int, str]] = []
    ws.on("close", lambda code, reason: closes.append((code, reason)))
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=10)
    assert info.value.code in (1006, 1011)
    finish_within(ws.close)
    assert not ws.connected
    assert ws.close_code in (1006, 1011)
    assert server.events.records("ping", url.split("cid=")[1].split("&")[0])


def test_keepalive_fails_connection_when_raw_peer_never_pongs(raw_server: Any) -> None:
    server = raw_server([serve_until_close(pong=False, echo_close_frame=True, timeout=10)])
    ws = wsclient.connect(server.url(), timeout=5, ping_interval=0.1, ping_timeout=0.3, close_timeout=1)
    with pytest.raises(ConnectionClosedError) as info:
        finish_within(lambda: ws.recv(timeout=10))
    assert info.value.code in (1006, 1011)
    finish_within(ws.close)
    server.join()
    pings = [f for f in server.connection.frames if f.opcode == Op.PING]
    assert pings, "the client sent no keepalive ping"
    if server.connection.close_code is not None:
        assert server.connection.close_code == 1011


def test_keepalive_survives_a_slow_but_answering_peer(raw_server: Any) -> None:
    """A peer that answers every ping keeps the connection open across many intervals."""
    server = raw_server([serve_until_close(pong=True, timeout=10)])
    with wsclient.connect(server.url(), timeout=5, ping_interval=0.05, ping_timeout=2) as ws:
        time.sleep(0.5)  # ten intervals
        assert ws.connected
    server.join()
    assert len([f for f in server.connection.frames if f.opcode == Op.PING]) >= 3


def test_close_frame_reaches_raw_peer(raw_server: Any) -> None:
    """The closing handshake on the wire: masked close frame with the code and reason."""
    server = raw_server([expect_close(4100), echo_close()])
    ws = wsclient.connect(server.url(), timeout=5)
    finish_within(lambda: ws.close(4100, "bye bye"))
    server.join()
    frame = server.connection.close_frames[0]
    assert frame.masked
    assert frame.close_reason == "bye bye"
    assert ws.close_code == 4100
