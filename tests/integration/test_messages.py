"""Messages and closes against real servers: websockets and Node's ws, ws:// and wss://."""

from __future__ import annotations

import os
import random
import threading
from typing import Any

import pytest
from rawserver import finish_within

import wsclient
from wsclient import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK


def _text(size: int, seed: int = 0) -> str:
    """A text of exactly ``size`` characters mixing ASCII and multi-byte characters."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 éß€漢字😀"
    return "".join(rng.choice(alphabet) for _ in range(size))


def test_text_and_binary_echo(peer: Any) -> None:
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xfe\xff"
        ws.send_text("explicit text")
        reply = ws.recv(timeout=5)
        assert reply == "explicit text" and isinstance(reply, str)
        ws.send_bytes(bytearray(b"explicit bytes"))
        reply = ws.recv(timeout=5)
        assert reply == b"explicit bytes" and isinstance(reply, bytes)
        ws.send(memoryview(b"view"))
        assert ws.recv(timeout=5) == b"view"
        ws.send("")
        assert ws.recv(timeout=5) == ""
        ws.send(b"")
        assert ws.recv(timeout=5) == b""
        ws.send("ünïcødé ✓ 😀")
        assert ws.recv(timeout=5) == "ünïcødé ✓ 😀"


def test_connection_attributes(peer: Any) -> None:
    ws = wsclient.connect(peer.url("/echo"), **peer.client_kwargs)
    try:
        assert ws.connected
        assert ws.response.status == 101
        assert ws.response.headers["upgrade"].lower() == "websocket"
        assert ws.response.headers["UPGRADE"] == ws.response.headers["Upgrade"]
        address = ws.remote_address
        assert address is not None and tuple(address[:2]) == (peer.host, peer.port)
        assert ws.web_socket_version == 13
        assert ws.subprotocol is None
        assert ws.close_code is None
    finally:
        ws.close()
    assert not ws.connected
    assert ws.close_code == 1000


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_large_message_echo(peer: Any, kind: str) -> None:
    """1 MiB each way; outgoing messages are fragmented at the default 16 KiB.

    The servers answer with one frame, which deflate (websockets' default) can make a
    little larger than the message: the frame limit is raised above 1 MiB for that.
    """
    data: str | bytes = _text(1 << 20, seed=1) if kind == "text" else os.urandom(1 << 20)
    kwargs = {**peer.client_kwargs, "max_received_frame_size": 4 << 20}
    with wsclient.connect(peer.url("/echo"), **kwargs) as ws:
        ws.send(data)
        echoed = ws.recv(timeout=20)
        assert type(echoed) is type(data)
        assert len(echoed) == len(data)
        assert echoed == data


def test_many_messages_keep_their_order(peer: Any) -> None:
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        for i in range(200):
            ws.send(f"m{i}" if i % 2 else f"m{i}".encode())
        got = [ws.recv(timeout=5) for _ in range(200)]
    assert got == [f"m{i}" if i % 2 else f"m{i}".encode() for i in range(200)]


def test_sends_from_several_threads_never_interleave(peer: Any) -> None:
    """4 threads send fragmented 100 KiB messages at once: every message arrives whole.

    An interleaved frame would also make the server fail the connection (1002).
    """
    threads_count, per_thread, size = 4, 4, 100 * 1024
    expected: set[bytes] = set()
    for t in range(threads_count):
        for m in range(per_thread):
            expected.add(bytes([t * 16 + m]) * size)
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        barrier = threading.Barrier(threads_count)
        errors: list[BaseException] = []

        def sender(t: int) -> None:
            try:
                barrier.wait(5)
                for m in range(per_thread):
                    ws.send(bytes([t * 16 + m]) * size)
            except BaseException as exc:
                errors.append(exc)

        workers = [
            threading.Thread(target=sender, args=(t,), name=f"test-sender-{t}") for t in range(threads_count)
        ]
        for w in workers:
            w.start()
        received = [ws.recv(timeout=20) for _ in range(threads_count * per_thread)]
        for w in workers:
            w.join(10)
        assert not errors
        assert ws.connected
    assert all(isinstance(r, bytes) and len(r) == size for r in received)
    assert set(received) == expected  # type: ignore[arg-type]
    for r in received:
        assert isinstance(r, bytes)
        assert r == bytes([r[0]]) * size, "a message mixes bytes of two messages"


@pytest.mark.parametrize("code", [1000, 1001])
def test_iteration_ends_quietly_on_normal_close(peer: Any, code: int) -> None:
    ws = wsclient.connect(peer.url("/close", count=3, code=code, reason="done"), **peer.client_kwargs)
    messages = finish_within(lambda: list(ws))
    assert messages == ["message 0", "message 1", "message 2"]
    finish_within(ws.close)
    assert ws.close_code == code
    assert ws.close_reason == "done"
    assert not ws.connected


def test_iteration_raises_on_1011(peer: Any) -> None:
    ws = wsclient.connect(peer.url("/close", count=2, code=1011, reason="server broke"), **peer.client_kwargs)
    got: list[Any] = []

    def consume() -> None:
        for message in ws:
            got.append(message)

    with pytest.raises(ConnectionClosedError) as info:
        finish_within(consume)
    assert got == ["message 0", "message 1"]
    assert info.value.code == 1011
    assert info.value.reason == "server broke"
    assert ws.close_code == 1011
    assert ws.close_reason == "server broke"
    finish_within(ws.close)


def test_server_close_code_and_reason_seen_by_client(peer: Any) -> None:
    url = peer.url("/echo")
    ws = wsclient.connect(url, **peer.client_kwargs)
    closed = threading.Event()
    seen: list[tuple[int, str]] = []

    @ws.on("close")
    def on_close(code: int, reason: str) -> None:
        seen.append((code, reason))
        closed.set()

    ws.send("close:4001:server says bye")
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (4001, "server says bye")
    assert closed.wait(5)
    finish_within(ws.close)
    assert seen == [(4001, "server says bye")]
    assert (ws.close_code, ws.close_reason) == (4001, "server says bye")
    # The client answered the close: the server saw its echo, not a dropped TCP connection.
    assert peer.wait_event("close", url)["code"] == 4001


def test_close_without_status_code(peer: Any) -> None:
    ws = wsclient.connect(peer.url("/close"), **peer.client_kwargs)
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    finish_within(ws.close)
    assert ws.close_code == 1005


def test_client_close_code_and_reason_seen_by_server(peer: Any) -> None:
    url = peer.url("/echo")
    ws = wsclient.connect(url, **peer.client_kwargs)
    events: list[tuple[int, str]] = []
    ws.on("close", lambda code, reason: events.append((code, reason)))
    finish_within(lambda: ws.close(4000, "client says bye"))
    record = peer.wait_event("close", url)
    assert (record["code"], record["reason"]) == (4000, "client says bye")
    assert ws.close_code == 4000  # the server echoed the code
    assert len(events) == 1 and events[0][0] == 4000
    assert not ws.connected


def test_with_block_closes_with_1000(peer: Any) -> None:
    url = peer.url("/echo")
    with wsclient.connect(url, **peer.client_kwargs) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    assert not ws.connected
    assert peer.wait_event("close", url)["code"] == 1000


def test_recv_and_send_after_close_raise(plain_peer: Any) -> None:
    ws = wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs)
    ws.close()
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=1)
    with pytest.raises(ConnectionClosed):
        ws.recv()
    with pytest.raises(ConnectionClosed):
        ws.send("late")
    with pytest.raises(ConnectionClosed):
        ws.send_bytes(b"late")
    with pytest.raises(ConnectionClosed):
        ws.ping(b"late")
    ws.close()  # a second close does nothing
    ws.close(4000, "ignored")
    assert ws.close_code == 1000
    assert list(ws) == []


def test_queued_messages_are_drained_before_closed(plain_peer: Any) -> None:
    """Messages that arrived before the close are still handed out, then ConnectionClosed."""
    ws = wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs)
    closed = threading.Event()
    ws.on("close", lambda code, reason: closed.set())
    for text in ("message 0", "message 1", "message 2", "close:1000:"):
        ws.send(text)
    assert closed.wait(5)
    assert [ws.recv(timeout=1) for _ in range(3)] == ["message 0", "message 1", "message 2"]
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=1)
    ws.close()


def test_message_listener_takes_messages_from_the_queue(peer: Any) -> None:
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        got: list[Any] = []
        three = threading.Event()

        def on_message(data: Any) -> None:
            got.append(data)
            if len(got) == 3:
                three.set()

        ws.on("message", on_message)
        ws.send("one")
        ws.send(b"two")
        ws.send("three")
        assert three.wait(5)
        assert got == ["one", b"two", "three"]
        ws.off("message", on_message)
        # The listener took them: the queue is empty, so recv sees only what comes next.
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
        assert got == ["one", b"two", "three"]


def test_message_listener_registered_in_connect_event_sees_first_message(plain_peer: Any) -> None:
    """Messages the server sends at once go to a listener added in the ``connect`` event."""
    client = wsclient.WebSocketClient(close_timeout=3)
    got: list[Any] = []
    done = threading.Event()

    @client.on("connect")
    def opened(connection: Any) -> None:
        connection.on("message", got.append)
        connection.on("close", lambda code, reason: done.set())

    ws = client.connect(plain_peer.url("/close", count=3, code=1000))
    assert ws is not None
    assert done.wait(5)
    finish_within(ws.close)
    assert got == ["message 0", "message 1", "message 2"]


def test_once_listener_fires_once(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs) as ws:
        got: list[Any] = []
        ws.once("message", got.append)
        ws.send("first")
        ws.send("second")
        # "first" went to the once-listener, "second" to the queue.
        assert ws.recv(timeout=5) == "second"
        assert got == ["first"]


def test_listener_error_is_reported_and_reader_survives(plain_peer: Any) -> None:
    with wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs) as ws:
        errors: list[BaseException] = []
        reported = threading.Event()
        got: list[Any] = []

        fine = threading.Event()

        def bad_listener(data: Any) -> None:
            if data == "boom":
                raise RuntimeError("listener failed")
            got.append(data)
            fine.set()

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            reported.set()

        ws.on("message", bad_listener)
        ws.on("error", on_error)
        ws.send("boom")
        assert reported.wait(5)
        assert isinstance(errors[0], RuntimeError)
        ws.send("fine")
        assert fine.wait(5)
        ws.off("message", bad_listener)
        ws.send("queued")
        assert ws.recv(timeout=5) == "queued"
        assert got == ["fine"]
        assert ws.connected


def test_drop_closes_at_once(plain_peer: Any) -> None:
    url = plain_peer.url("/echo")
    ws = wsclient.connect(url, **plain_peer.client_kwargs)
    closes: list[tuple[int, str]] = []
    ws.on("close", lambda code, reason: closes.append((code, reason)))
    finish_within(ws.drop)
    assert not ws.connected
    assert ws.close_code == 1006
    assert closes and closes[0][0] == 1006
    with pytest.raises(ConnectionClosed):
        ws.send("x")
    record = plain_peer.wait_event("close", url)
    assert record["code"] == 1006  # no close frame went on the wire


def test_drop_with_code_sends_a_close_frame(plain_peer: Any) -> None:
    url = plain_peer.url("/echo")
    ws = wsclient.connect(url, **plain_peer.client_kwargs)
    finish_within(lambda: ws.drop(4002, "going now"))
    assert ws.close_code == 4002
    record = plain_peer.wait_event("close", url)
    assert (record["code"], record["reason"]) == (4002, "going now")


def test_close_from_another_thread_unblocks_recv(plain_peer: Any) -> None:
    ws = wsclient.connect(plain_peer.url("/echo"), **plain_peer.client_kwargs)
    blocked = threading.Event()
    outcome: list[BaseException] = []

    def reader() -> None:
        blocked.set()
        try:
            ws.recv()
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=reader, name="test-recv")
    t.start()
    assert blocked.wait(5)
    finish_within(ws.close)
    t.join(5)
    assert not t.is_alive(), "recv() stayed blocked after close()"
    assert outcome and isinstance(outcome[0], ConnectionClosedOK)
