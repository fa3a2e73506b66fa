"""The threading model: the lazily started reader, direct reads in recv(), and closes.

These tests assert behaviour (which thread did what, what reached the peer), never timings
beyond generous upper bounds that only catch hangs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from rawserver import (
    Op,
    build_frame,
    expect_close,
    send,
    send_close,
    serve_until_close,
    sleep,
)

import wsclient


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wsclient-reader")]


def test_open_and_close_at_once_starts_no_reader_thread(raw_server: Any) -> None:
    server = raw_server([serve_until_close()])
    started_before = {t.ident for t in _readers()}
    ws = wsclient.connect(server.url(), ping_interval=None)
    ws.close()
    server.join()
    assert ws.close_code == 1000
    assert {t.ident for t in _readers()} <= started_before
    assert ws._reader is None  # the close ran on this thread (no reader thread was made)


def test_an_unused_connection_still_answers_pings(raw_server: Any) -> None:
    """The reader starts shortly after the opening even if the application never reads."""
    got_pong = threading.Event()

    def step(conn: Any) -> None:
        conn.send(build_frame(Op.PING, b"are you there"))
        frame = conn.read_frame(5)
        if frame is not None and frame.opcode == Op.PONG and frame.payload == b"are you there":
            got_pong.set()

    server = raw_server([step, serve_until_close()])
    with wsclient.connect(server.url(), ping_interval=None):
        assert got_pong.wait(5)
    server.join()


def test_recv_in_order_with_control_frames_in_between(raw_server: Any) -> None:
    """Messages read directly by the consumer and control frames handed to the reader
    thread keep their order; listeners run on the reader thread."""
    script = []
    for i in range(200):
        script.append(send(build_frame(Op.TEXT, f"m{i}")))
        if i % 7 == 0:
            script.append(send(build_frame(Op.PING, f"p{i}")))
        if i % 50 == 0:
            script.append(sleep(0.02))  # let the consumer catch up and read directly
    server = raw_server([*script, serve_until_close()])
    ping_threads: list[str] = []
    with wsclient.connect(server.url(), ping_interval=None) as ws:
        ws.on("ping", lambda data, cancel: ping_threads.append(threading.current_thread().name))
        got = [ws.recv(timeout=5) for _ in range(200)]
    server.join()
    assert got == [f"m{i}" for i in range(200)]
    assert ping_threads and all(name.startswith("wsclient-reader") for name in ping_threads)
    pongs = [f.payload for f in server.connection.frames if f.opcode == Op.PONG]
    assert pongs == [f"p{i}".encode() for i in range(0, 200, 7)]


def test_echo_loop_then_peer_close(raw_server: Any) -> None:
    """Request/response traffic (the direct-read path) followed by a close from the peer."""

    def step(conn: Any) -> None:
        for _ in range(300):
            frame = conn.read_frame(5)
            assert frame is not None and frame.opcode == Op.TEXT
            conn.send(build_frame(Op.TEXT, frame.payload))
        conn.send(build_frame(Op.CLOSE, b"\x03\xe8bye"))

    server = raw_server([step, expect_close(1000)])
    with wsclient.connect(server.url(), ping_interval=None) as ws:
        for i in range(300):
            ws.send(f"q{i}")
            assert ws.recv(timeout=5) == f"q{i}"
        started = time.monotonic()
        try:
            ws.recv(timeout=5)
            raise AssertionError("recv() returned after the peer's close")
        except wsclient.ConnectionClosedOK as exc:
            assert exc.code == 1000 and exc.reason == "bye"
        assert time.monotonic() - started < 4  # raised on the close frame, not on a timeout
    server.join()


def test_inline_close_honours_close_timeout(raw_server: Any) -> None:
    """A peer that never answers the close: an unused connection's inline close gives up
    after close_timeout with 1006."""
    server = raw_server([sleep(3)])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=0.3)
    started = time.monotonic()
    ws.close()
    assert time.monotonic() - started < 2.5
    assert ws.close_code == 1006
    assert not ws.connected


def test_peer_close_frame_then_silence_does_not_block_recv(raw_server: Any) -> None:
    server = raw_server([send_close(1001, "going"), sleep(2)])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=1)
    started = time.monotonic()
    try:
        ws.recv(timeout=5)
        raise AssertionError("recv() returned a message")
    except wsclient.ConnectionClosedOK as exc:
        assert exc.code == 1001
    assert time.monotonic() - started < 0.9  # before close_timeout ran out
    ws.close()


def test_recv_from_a_listener_raises_instead_of_hanging(raw_server: Any) -> None:
    server = raw_server([send(build_frame(Op.TEXT, "one")), serve_until_close()])
    errors: list[BaseException] = []
    seen = threading.Event()
    client = wsclient.WebSocketClient(ping_interval=None)

    @client.on("connect")
    def opened(connection: Any) -> None:  # listeners registered before anything is read
        connection.on("error", errors.append)

        @connection.on("message")
        def on_message(data: Any) -> None:
            try:
                connection.recv(timeout=1)
            finally:
                seen.set()

    ws = client.connect(server.url())
    assert ws is not None
    assert seen.wait(5)
    ws.close()
    server.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_recv_after_the_reader_ended_raises_closed_on_any_thread(raw_server: Any) -> None:
    """Once the reader thread has ended, a new thread may get its ident from the OS: recv()
    there is an ordinary caller and gets ConnectionClosed, not the listener's RuntimeError."""
    server = raw_server([send(build_frame(Op.TEXT, "one")), serve_until_close()])
    ws = wsclient.connect(server.url(), ping_interval=None)
    assert ws.recv(timeout=5) == "one"
    reader = ws._reader
    assert reader is not None
    reader_ident = reader.ident
    ws.close()
    server.join()
    reader.join(5)
    assert not reader.is_alive()
    outcomes: list[tuple[int, BaseException | None]] = []

    def call_recv() -> None:
        try:
            ws.recv(timeout=0)
        except BaseException as exc:  # recorded, checked below
            outcomes.append((threading.get_ident(), exc))
        else:
            outcomes.append((threading.get_ident(), None))

    for _ in range(20):  # threads started one after another commonly reuse an ident
        thread = threading.Thread(target=call_recv)
        thread.start()
        thread.join(5)
    assert len(outcomes) == 20
    assert all(isinstance(exc, wsclient.ConnectionClosed) for _, exc in outcomes), outcomes
    # Informative only: whether the OS reused the reader's ident in this run.
    print("reader ident reused:", any(ident == reader_ident for ident, _ in outcomes))


def test_a_message_queued_just_before_a_direct_read_is_returned(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader thread queues a message and lets go of the read lock just as a consumer,
    who found the queue empty a moment before, takes the lock to read the socket itself:
    recv() returns the queued message instead of blocking on a socket with nothing more
    to come. The two delays below force that interleaving, which otherwise needs a thread
    switch in a window of a few bytecodes."""
    go = threading.Event()
    server = raw_server([
        lambda conn: go.wait(5) or None,
        send(build_frame(Op.TEXT, "late")),
        serve_until_close(),
    ])
    ws = wsclient.connect(server.url(), ping_interval=None)
    deadline = time.monotonic() + 5
    while ws._reader_ident is None and time.monotonic() < deadline:  # the reader reads
        time.sleep(0.01)
    time.sleep(0.05)
    assert ws._direct, "the consumer must be allowed to read the socket itself"
    queue = ws._inbox.queue
    from wsclient import connection
    from wsclient.inbox import Inbox

    real_can_read = connection.can_read_directly
    real_wait_resumed = Inbox.wait_resumed

    def can_read_once_queued(conn: Any) -> bool:
        # The consumer found the queue empty; now the server sends and the reader queues.
        go.set()
        end = time.monotonic() + 5
        while not queue and time.monotonic() < end:
            time.sleep(0.005)
        return real_can_read(conn)

    def reader_pauses_outside_the_lock(inbox: Inbox) -> None:
        if threading.get_ident() == ws._reader_ident and queue:
            time.sleep(0.5)  # between its release of the read lock and the next read
        real_wait_resumed(inbox)

    monkeypatch.setattr(connection, "can_read_directly", can_read_once_queued)
    monkeypatch.setattr(Inbox, "wait_resumed", reader_pauses_outside_the_lock)
    got: list[Any] = []
    consumer = threading.Thread(target=lambda: got.append(ws.recv()))
    consumer.start()
    consumer.join(3)
    returned = list(got)  # before close() below, which would end a blocked read anyway
    monkeypatch.undo()
    ws.close()
    consumer.join(5)
    server.join()
    assert returned == ["late"]


def test_drop_refuses_codes_that_may_not_be_sent(raw_server: Any) -> None:
    server = raw_server([serve_until_close()])
    ws = wsclient.connect(server.url(), ping_interval=None)
    for code in (999, 1004, 1015, 5000):
        with pytest.raises(ValueError):
            ws.drop(code)
    with pytest.raises(ValueError):
        ws.drop(1000, "x" * 124)
    with pytest.raises(TypeError):
        ws.close("1000")  # type: ignore[arg-type]
    assert ws.connected
    ws.drop(4000, "bye")
    assert ws.close_code == 4000
    server.join()
    assert [f.close_code for f in server.connection.frames if f.opcode == Op.CLOSE] == [4000]


@pytest.mark.parametrize("launched", [False, True], ids=["before-launch", "after-launch"])
def test_an_interrupted_reader_start_still_closes(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch, launched: bool
) -> None:
    """Ctrl-C in the main thread can land inside Thread.start() (seen on CPython 3.10 in
    the CLI): the start is undone, whether or not the thread was launched, and close()
    then completes the closing handshake on the caller's thread."""
    real_start = threading.Thread.start

    def interrupted_start(self: threading.Thread) -> None:
        if launched:
            real_start(self)
        raise KeyboardInterrupt

    server = raw_server([serve_until_close()])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=5)
    before = {t.ident for t in _readers()}
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        ws.recv(timeout=1)
    monkeypatch.undo()
    assert ws._reader is None
    started = time.monotonic()
    ws.close()
    assert time.monotonic() - started < 5
    server.join()
    assert ws.close_code == 1000
    # A launched thread found itself disowned and ended without reading.
    deadline = time.monotonic() + 5
    while {t.ident for t in _readers()} - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not {t.ident for t in _readers()} - before


def test_an_opening_interrupted_after_the_handshake_closes_its_connection(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the handshake but before connect() returned: the caller never gets the
    connection, so the library closes it (1001, going away) instead of leaking it."""
    server = raw_server([expect_close(1001, timeout=5)])

    def interrupted(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(wsclient.WebSocketConnection, "_start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wsclient.connect(server.url(), ping_interval=None)
    server.join()


@pytest.mark.parametrize("launched", [False, True], ids=["before-launch", "after-launch"])
def test_an_interrupted_background_connect_can_be_tried_again(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch, launched: bool
) -> None:
    """WebSocketClient.connect(wait=False) interrupted inside Thread.start(): the client
    is not left with an attempt "in progress" for ever, and abort() does not raise."""
    server = raw_server([serve_until_close(timeout=10)])
    client = wsclient.WebSocketClient()
    connected: list[Any] = []
    opened = threading.Event()
    client.on("connect", lambda conn: (connected.append(conn), opened.set()))
    real_start = threading.Thread.start

    def interrupted_start(self: threading.Thread) -> None:
        if launched:
            real_start(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        client.connect(server.url(), wait=False)
    monkeypatch.undo()
    if not launched:
        client.abort()  # nothing to abort: no error (it used to join a thread never started)
        assert client.connect(server.url(), wait=False) is None
    else:
        # Launched: either the thread had begun the opening (it goes on, and a second
        # connect() is refused while it runs), or it found the start undone and ended.
        try:
            client.connect(server.url(), wait=False)
        except RuntimeError as exc:
            assert "already in progress" in str(exc)
    assert opened.wait(10)
    connected[0].close()
    server.join()
    assert connected[0].close_code == 1000
