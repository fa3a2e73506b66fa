"""The fault suite: hostile or stalled peers, and the bound every blocking call keeps.

Each test scripts a raw peer that misbehaves (stops reading, floods, stalls mid-frame,
half-closes after a protocol error) and asserts that the call under test returns within
its documented bound plus ``SLACK`` (the machine is shared: generous slack, but a hang
fails). Calls that used to hang run under ``finish_within`` so that a regression fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rawserver import (
    Op,
    RawConnection,
    build_frame,
    call,
    expect_close,
    finish_within,
    send,
    send_close,
    serve_until_close,
    sleep,
    wait,
)

import wsclient
from wsclient import _direct

SLACK = 1.5
CLOSE_TIMEOUT = 1.0


@pytest.fixture(params=["ws", "wss"])
def transport(request: pytest.FixtureRequest, server_tls: Any, ca_path: str) -> dict[str, Any]:
    """Server options and client options for plain TCP and for TLS."""
    if request.param == "ws":
        return {"server": {}, "client": {}}
    return {"server": {"ssl_context": server_tls.server_context}, "client": {"verify": ca_path}}


@pytest.fixture(params=[True, False], ids=["direct-reads", "reader-only"])
def direct_reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(_direct, "DIRECT_READS", request.param)
    return bool(request.param)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown: ends the scripts that wait for the test."""
    event = threading.Event()
    yield event
    event.set()


def _send_until_closed(ws: Any, size: int, errors: list[BaseException], ended: list[float]) -> None:
    payload = b"x" * size
    try:
        while True:
            ws.send(payload)
    except BaseException as exc:  # recorded for the test
        errors.append(exc)
    finally:
        ended.append(time.monotonic())


def _start_senders(ws: Any, count: int, size: int = 1 << 20) -> tuple[list[threading.Thread], list[BaseException], list[float]]:
    errors: list[BaseException] = []
    ended: list[float] = []
    threads = [
        threading.Thread(target=_send_until_closed, args=(ws, size, errors, ended), name=f"test-sender-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads, errors, ended


def _wait_stuck(threads: list[threading.Thread], seconds: float = 0.5) -> None:
    """Give the senders time to fill the socket buffers; they must still be blocked."""
    time.sleep(seconds)
    assert all(t.is_alive() for t in threads), "a sender ended before the peer's buffers filled"


# ---------------------------------------------------------------------- blocked writes


@pytest.mark.parametrize("senders", [1, 4])
def test_close_while_senders_are_blocked_on_a_peer_that_stopped_reading(
    raw_server: Any, transport: dict[str, Any], release: threading.Event, senders: int
) -> None:
    server = raw_server([wait(release, 30)], recv_buffer=4096, **transport["server"])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT, **transport["client"])
    threads, errors, _ = _start_senders(ws, senders)
    _wait_stuck(threads)
    start = time.monotonic()
    finish_within(ws.close, CLOSE_TIMEOUT + 10)
    elapsed = time.monotonic() - start
    assert elapsed < CLOSE_TIMEOUT + SLACK
    for thread in threads:
        thread.join(SLACK)
        assert not thread.is_alive(), "a blocked sender was not ended by close()"
    assert len(errors) == senders
    assert all(isinstance(e, wsclient.ConnectionClosed) for e in errors), errors
    assert ws.close_code == 1006  # the close frame never got through: dropped


def test_drop_ends_a_blocked_send_at_once(raw_server: Any, transport: dict[str, Any], release: threading.Event) -> None:
    server = raw_server([wait(release, 30)], recv_buffer=4096, **transport["server"])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=5.0, **transport["client"])
    threads, errors, _ = _start_senders(ws, 2)
    _wait_stuck(threads)
    start = time.monotonic()
    finish_within(lambda: ws.drop(4000, "bye"), 10)
    assert time.monotonic() - start < SLACK
    for thread in threads:
        thread.join(SLACK)
        assert not thread.is_alive()
    assert all(isinstance(e, wsclient.ConnectionClosedError) for e in errors), errors
    assert ws.close_code == 4000


def test_keepalive_fails_a_peer_that_stopped_reading_while_a_send_is_blocked(
    raw_server: Any, transport: dict[str, Any], release: threading.Event
) -> None:
    # The interval is long enough that one interval late (the old sampling) is caught.
    interval, timeout = 2.0, 0.5
    server = raw_server([wait(release, 30)], recv_buffer=4096, **transport["server"])
    ws = wsclient.connect(
        server.url(), ping_interval=interval, ping_timeout=timeout, close_timeout=CLOSE_TIMEOUT, **transport["client"]
    )
    seen_threads: set[str] = set()
    start = time.monotonic()
    threads, errors, ended = _start_senders(ws, 1)
    while threads[0].is_alive() and time.monotonic() - start < 10:
        seen_threads.update(t.name for t in threading.enumerate())
        time.sleep(0.01)
    threads[0].join(0)
    assert not threads[0].is_alive(), "keepalive never ended the blocked send"
    # Blocked from (about) the start: failed once nothing was written for
    # ping_interval + ping_timeout (keepalive looks every 0.25 s while a write is stuck),
    # and not before.
    assert interval + timeout - 0.1 <= ended[0] - start < interval + timeout + 0.25 + 1.0
    assert isinstance(errors[0], wsclient.ConnectionClosedError)
    assert errors[0].code == 1011
    finish_within(ws.close, 10)
    assert ws.close_code == 1011
    assert not any(name.startswith("wsclient-drop") for name in seen_threads)


def test_keepalive_fails_a_peer_that_never_answers_pings_without_an_extra_thread(raw_server: Any) -> None:
    server = raw_server([serve_until_close(pong=False, timeout=10)])
    seen_threads: set[str] = set()
    closed = threading.Event()
    ws = wsclient.connect(server.url(), ping_interval=0.3, ping_timeout=0.3, close_timeout=CLOSE_TIMEOUT)
    ws.on("close", lambda code, reason: closed.set())
    start = time.monotonic()
    while not closed.is_set() and time.monotonic() - start < 10:
        seen_threads.update(t.name for t in threading.enumerate())
        time.sleep(0.01)
    assert closed.is_set()
    assert time.monotonic() - start < 0.3 + 0.3 + SLACK
    assert ws.close_code == 1011
    with pytest.raises(wsclient.ConnectionClosedError):
        ws.send("late")
    assert not any(name.startswith("wsclient-drop") for name in seen_threads)
    ws.close()


def _flood_pings(seconds: float) -> Any:
    def step(conn: RawConnection) -> None:
        frames = build_frame(Op.PING, b"p" * 100) * 64
        conn.sock.settimeout(0.5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                conn.sock.sendall(frames)
            except TimeoutError:
                break  # the client stopped reading: stop here (a partial frame is fine)
            except OSError:
                return
        while time.monotonic() < end:  # never read: the client's pongs pile up
            time.sleep(0.05)

    return call(step)


def test_ping_flood_during_close(raw_server: Any, transport: dict[str, Any]) -> None:
    server = raw_server([_flood_pings(4)], recv_buffer=4096, **transport["server"])
    ws = wsclient.connect(
        server.url(),
        ping_interval=None,
        close_timeout=CLOSE_TIMEOUT,
        request_options={"socket_options": [(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)]},
        **transport["client"],
    )
    ws.on("pong", lambda data: None)  # start the reader thread now
    time.sleep(1.0)  # the reader answers pings until its writes cannot go out
    start = time.monotonic()
    finish_within(ws.close, CLOSE_TIMEOUT + 10)
    assert time.monotonic() - start < CLOSE_TIMEOUT + SLACK
    assert ws.close_code is not None


# ---------------------------------------------------------------------- drop


def test_drop_from_another_thread_with_a_full_queue(raw_server: Any, release: threading.Event) -> None:
    messages = [send(build_frame(Op.TEXT, f"m{i}")) for i in range(100)]
    server = raw_server([*messages, wait(release, 30)])
    ws = wsclient.connect(server.url(), ping_interval=None, max_queue=4)
    ws.pause()  # starts the reader thread
    ws.resume()
    deadline = time.monotonic() + 5
    while len(ws._inbox) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ws._inbox) >= 4  # the reader now waits for room in the queue
    start = time.monotonic()
    finish_within(ws.drop, 10)
    assert time.monotonic() - start < SLACK
    assert ws.close_code == 1006
    assert not ws.connected


def test_drop_from_a_listener(raw_server: Any, release: threading.Event) -> None:
    messages = [send(build_frame(Op.TEXT, f"m{i}")) for i in range(50)]
    server = raw_server([*messages, wait(release, 30)])
    ws = wsclient.connect(server.url(), ping_interval=None, max_queue=2)
    closed = threading.Event()
    got: list[Any] = []
    returned = threading.Event()

    def on_message(data: Any) -> None:
        got.append(data)
        if len(got) == 3:
            ws.drop(4001, "from a listener")
            returned.set()

    ws.on("message", on_message)  # first: registering it starts the reader
    ws.on("close", lambda code, reason: closed.set())
    assert returned.wait(5), "drop() from a listener did not return"
    assert closed.wait(5)
    assert ws.close_code == 4001
    assert got[:3] == ["m0", "m1", "m2"]
    finish_within(ws.close, 5)


# ---------------------------------------------------------------------- recv bounds


def test_recv_timeout_zero_polling_after_a_blocking_recv_gets_every_message(
    raw_server: Any, direct_reads: bool
) -> None:
    script: list[Any] = [send(build_frame(Op.TEXT, "first"))]
    for i in range(15):
        script += [sleep(0.04), send(build_frame(Op.TEXT, f"m{i}"))]
    server = raw_server([*script, serve_until_close()])
    with wsclient.connect(server.url(), ping_interval=None) as ws:
        assert ws.recv(timeout=5) == "first"
        got: list[Any] = []
        deadline = time.monotonic() + 8
        while len(got) < 15 and time.monotonic() < deadline:
            try:
                got.append(ws.recv(timeout=0))
            except TimeoutError:
                time.sleep(1 / 60)
    server.join()
    assert got == [f"m{i}" for i in range(15)]


def test_recv_timeout_zero_sees_what_the_socket_holds(raw_server: Any, release: threading.Event) -> None:
    """A message already in the socket is returned by recv(timeout=0) after a blocking recv."""
    arrived = threading.Event()
    script = [
        send(build_frame(Op.TEXT, "first")),
        wait(release, 30),
        send(build_frame(Op.TEXT, "second")),
        call(lambda conn: arrived.set()),
        serve_until_close(),
    ]
    server = raw_server(script)
    with wsclient.connect(server.url(), ping_interval=None) as ws:
        assert ws.recv(timeout=5) == "first"
        release.set()
        assert arrived.wait(5)
        time.sleep(0.1)  # in the client's socket by now
        deadline = time.monotonic() + 1.0
        got = None
        while got is None and time.monotonic() < deadline:
            try:
                got = ws.recv(timeout=0)
            except TimeoutError:
                time.sleep(0.005)
        assert got == "second"
    server.join()


def test_recv_timeout_while_a_large_frame_stalls_half_way(
    raw_server: Any, release: threading.Event, direct_reads: bool
) -> None:
    size = 4 << 20
    payload = bytes(range(256)) * (size // 256)
    frame = build_frame(Op.BINARY, payload)
    half = len(frame) // 2
    server = raw_server([send(frame[:half]), wait(release, 30), send(frame[half:]), serve_until_close()])
    with wsclient.connect(
        server.url(), ping_interval=None, max_received_frame_size=8 << 20, max_received_message_size=8 << 20
    ) as ws:
        time.sleep(0.2)  # the first half is in (or on its way)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            finish_within(lambda: ws.recv(timeout=0.5), 10)
        assert time.monotonic() - start < 0.5 + SLACK
        release.set()
        assert ws.recv(timeout=10) == payload
    server.join()


# ---------------------------------------------------------------------- closing


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _flood_data(seconds: float) -> Any:
    def step(conn: RawConnection) -> None:
        chunk = build_frame(Op.BINARY, b"f" * 65536) * 16
        conn.sock.settimeout(1.0)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                conn.sock.sendall(chunk)
            except TimeoutError:
                continue
            except OSError:
                return

    return call(step)


@pytest.mark.skipif(not hasattr(socket, "MSG_WAITALL"), reason="Linux-only RSS probe")
def test_memory_stays_bounded_while_a_flooding_server_ignores_our_close(raw_server: Any) -> None:
    close_timeout = 2.0
    server = raw_server([_flood_data(close_timeout + 5)])
    ws = wsclient.connect(server.url(), ping_interval=None, max_queue=4, close_timeout=close_timeout)
    ws.pause()
    ws.resume()
    time.sleep(0.3)  # the queue is full: the reader waits for room
    baseline = _rss_kib()
    peak = [baseline]
    queue_peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_kib())
            queue_peak[0] = max(queue_peak[0], len(ws._inbox))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, name="test-rss", daemon=True)
    sampler.start()
    start = time.monotonic()
    finish_within(ws.close, close_timeout + 10)
    elapsed = time.monotonic() - start
    stop.set()
    sampler.join()
    assert elapsed < close_timeout + SLACK
    # Two seconds of loopback flood is gigabytes: queued, it would show at once.
    assert peak[0] - baseline < 64 * 1024, f"RSS grew by {peak[0] - baseline} KiB while closing"
    assert queue_peak[0] <= 4 + 1024  # max_queue plus at most one read's batch


def test_failure_close_is_sent_when_the_peer_half_closes_before_the_consumer_caught_up(raw_server: Any) -> None:
    messages = [send(build_frame(Op.TEXT, f"m{i}")) for i in range(5)]
    script = [
        *messages,
        send(build_frame(3, b"")),  # reserved opcode: a protocol error
        call(lambda conn: conn.sock.shutdown(socket.SHUT_WR)),
        expect_close(1002, timeout=5),
    ]
    server = raw_server(script)
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT)
    ws.pause()
    ws.resume()
    time.sleep(0.5)  # the reader read everything, the EOF included; nobody consumed
    server.join()  # the 1002 close frame reached the server without the consumer
    assert [ws.recv(timeout=5) for _ in range(5)] == [f"m{i}" for i in range(5)]
    with pytest.raises(wsclient.ConnectionClosedError) as info:
        ws.recv(timeout=5)
    assert info.value.code == 1002
    ws.close()


class _TimeLimit(Exception):
    """What a worker's time limit raises from its signal handler (Celery's soft limit)."""


@contextlib.contextmanager
def _time_limit_after(seconds: float) -> Iterator[None]:
    """Raise ``_TimeLimit`` in the main thread after ``seconds``, from a SIGALRM handler."""

    def time_limit(signum: int, frame: Any) -> None:
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, time_limit)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("how", ["send", "send_many"])
def test_a_send_interrupted_by_a_signal_fails_the_connection(
    raw_server: Any, transport: dict[str, Any], release: threading.Event, how: str
) -> None:
    """A signal handler's exception ends a send blocked on a peer that stopped reading,
    part-way through a frame: nothing may follow that partial frame on the wire, so the
    connection fails (1006) at once instead of writing after it or blocking again."""
    server = raw_server([wait(release, 30)], recv_buffer=4096, **transport["server"])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT, **transport["client"])
    with _time_limit_after(0.3):
        with pytest.raises(_TimeLimit):
            big = b"x" * (16 << 20)  # far more than the socket buffers hold
            if how == "send":
                ws.send(big)
            else:
                ws.send_many([b"small", big])
    start = time.monotonic()
    with pytest.raises(wsclient.ConnectionClosed):
        finish_within(lambda: ws.send("after"), SLACK)
    finish_within(ws.close, CLOSE_TIMEOUT + SLACK)
    assert time.monotonic() - start < CLOSE_TIMEOUT + SLACK
    assert ws.close_code == 1006
    assert not ws.connected


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no-timeout", "timeout"])
def test_a_recv_interrupted_while_waiting_loses_nothing(
    raw_server: Any, release: threading.Event, timeout: float | None
) -> None:
    server = raw_server([wait(release, 30), send(build_frame(Op.TEXT, b"after the alarm")), serve_until_close()])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT)
    with _time_limit_after(0.3):
        with pytest.raises(_TimeLimit):
            ws.recv(timeout=timeout)
    assert ws.connected
    release.set()
    assert ws.recv(timeout=5) == "after the alarm"
    ws.close()
    server.join()
    assert ws.close_code == 1000


def _interrupt_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next parse on the main thread raise ``_TimeLimit`` (fault injection at
    the one point where a signal handler's exception loses bytes: after the read)."""
    from wsclient.protocol import Protocol

    real = Protocol.receive_data

    def receive_data(self: Protocol, data: bytes) -> Any:
        if data and threading.current_thread() is threading.main_thread():
            monkeypatch.setattr(Protocol, "receive_data", real)
            raise _TimeLimit
        return real(self, data)

    monkeypatch.setattr(Protocol, "receive_data", receive_data)


def test_a_recv_interrupted_while_parsing_fails_the_connection(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    """Bytes taken from the socket and then lost to an interruption would leave a gap in
    the messages, or garbage: the connection fails with 1006 instead, within its bounds."""
    frames = b"".join(build_frame(Op.TEXT, str(i).encode()) for i in range(100))
    server = raw_server([wait(release, 30), send(frames), serve_until_close(timeout=10)])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT)
    assert ws._direct, "the consumer must read the socket itself for this test"
    _interrupt_parsing(monkeypatch)
    release.set()
    with pytest.raises(_TimeLimit):
        ws.recv(timeout=5)
    start = time.monotonic()
    with pytest.raises(wsclient.ConnectionClosedError) as caught:
        finish_within(lambda: ws.recv(timeout=5), CLOSE_TIMEOUT + SLACK)
    assert caught.value.code == 1006
    finish_within(ws.close, CLOSE_TIMEOUT + SLACK)
    assert time.monotonic() - start < CLOSE_TIMEOUT + SLACK
    assert ws.close_code == 1006


def test_a_close_interrupted_while_parsing_still_ends_the_connection(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server([expect_close(), send(build_frame(Op.TEXT, b"late")), sleep(0.2), send_close(1000)])
    ws = wsclient.connect(server.url(), ping_interval=None, close_timeout=CLOSE_TIMEOUT)
    _interrupt_parsing(monkeypatch)
    with pytest.raises(_TimeLimit):
        ws.close()
    assert not ws.connected
    assert ws.close_code == 1006
    finish_within(ws.close, SLACK)  # a second close returns at once
    with pytest.raises(wsclient.ConnectionClosed):
        ws.send("after")
