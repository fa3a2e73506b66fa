"""Back-pressure: the bounded recv queue (``max_queue``) and ``pause()`` / ``resume()``.

The websockets server's ``send`` blocks when TCP buffers are full, and it counts what it
sent (``server.flood_sent``): a slow consumer shows up there as a server that stops
sending well before the end, then finishes once the client reads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import cid_of
from rawserver import finish_within

import wsclient

COUNT = 400
SIZE = 64 * 1024  # 400 x 64 KiB = 25 MiB, far more than the socket buffers hold


def _wait_until_stalled(server: Any, cid: str, *, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Wait until the server has started sending and its sent counter then stops moving
    for ``quiet`` seconds; return it."""
    end = time.monotonic() + limit
    last = -1
    last_change = time.monotonic()
    while time.monotonic() < end:
        current = server.flood_sent.get(cid, 0)
        if current == 0:
            last_change = time.monotonic()
        elif current != last:
            last, last_change = current, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return int(current)
        time.sleep(0.02)
    return int(server.flood_sent.get(cid, 0))


def _check_flood(messages: list[Any]) -> None:
    assert len(messages) == COUNT
    for i, message in enumerate(messages):
        assert isinstance(message, bytes) and len(message) == SIZE
        assert int.from_bytes(message[:4], "big") == i


def test_slow_consumer_blocks_the_server(websockets_server: Any) -> None:
    """Nobody calls recv(): the queue fills to max_queue, the reader stops, TCP pushes back."""
    url = websockets_server.url("/flood", count=COUNT, size=SIZE)
    cid = cid_of(url)
    with wsclient.connect(
        url, max_queue=4, compression=None, max_received_frame_size=1 << 20, close_timeout=3
    ) as ws:
        stalled_at = _wait_until_stalled(websockets_server, cid)
        assert 0 < stalled_at < COUNT, f"the server sent {stalled_at} of {COUNT} without the client reading"
        messages = [ws.recv(timeout=10) for _ in range(COUNT)]
        _check_flood(messages)
    assert websockets_server.flood_sent[cid] == COUNT
    assert websockets_server.wait_event("close", url)["code"] == 1000


def test_iteration_drains_a_flood(websockets_server: Any) -> None:
    url = websockets_server.url("/flood", count=COUNT, size=SIZE)
    with wsclient.connect(url, max_queue=2, compression=None, close_timeout=3) as ws:
        messages = finish_within(lambda: list(ws), 30)
    _check_flood(messages)


def test_pause_stops_reading_and_resume_restarts(websockets_server: Any) -> None:
    url = websockets_server.url("/echo")
    with wsclient.connect(url, compression=None, close_timeout=3) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        ws.pause()
        ws.send("while paused")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        ws.resume()
        assert ws.recv(timeout=5) == "while paused"


def test_pause_pushes_back_on_the_server(websockets_server: Any) -> None:
    """A paused connection with a message listener: the server stalls until resume()."""
    got: list[bytes] = []
    all_in = threading.Event()

    def on_message(data: Any) -> None:
        got.append(data)
        if len(got) == COUNT:
            all_in.set()

    client = wsclient.WebSocketClient(compression=None, close_timeout=3)

    @client.on("connect")
    def opened(connection: Any) -> None:
        connection.on("message", on_message)
        connection.pause()  # before the reader starts: nothing is read

    url = websockets_server.url("/flood", count=COUNT, size=SIZE)
    cid = cid_of(url)
    ws = client.connect(url)
    assert ws is not None
    with ws:
        stalled_at = _wait_until_stalled(websockets_server, cid)
        assert stalled_at < COUNT
        assert len(got) == 0
        ws.resume()
        assert all_in.wait(20)
    _check_flood(got)


def test_pause_and_resume_on_node(node_server: Any) -> None:
    """The same through Node's ws: every message arrives, in order, after resume()."""
    with wsclient.connect(node_server.url("/echo"), close_timeout=3) as ws:
        ws.pause()
        for i in range(20):
            ws.send(f"n{i}")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        ws.resume()
        assert [ws.recv(timeout=5) for _ in range(20)] == [f"n{i}" for i in range(20)]


def test_flood_from_node_arrives_whole(node_server: Any) -> None:
    url = node_server.url("/flood", count=100, size=SIZE)
    with wsclient.connect(url, max_queue=2, close_timeout=3) as ws:
        messages = finish_within(lambda: list(ws), 30)
    assert len(messages) == 100
    for i, m in enumerate(messages):
        assert isinstance(m, bytes)
        assert int.from_bytes(m[:4], "big") == i and len(m) == SIZE
