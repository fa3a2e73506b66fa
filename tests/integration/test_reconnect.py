"""reconnect() (issue 9): backoff, retry policy, Retry-After, stop(), the event-API variant.

Real peers: a scripted server that drops every connection, pytest-httpserver for 403, 429
and 503 answers, the websockets server for open connections and the close codes it sees.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from rawserver import close, read_request
from werkzeug import Request, Response

import wsclient
from wsclient import Backoff, ConnectFailed, HandshakeError, InvalidStatus, InvalidURL, TLSError
from wsclient.reconnect import default_retry, retry_after

SLACK = 1.5


def _ws(httpserver: Any, path: str) -> str:
    return str(httpserver.url_for(path)).replace("http://", "ws://")


# --------------------------------------------------------------------------- Backoff


def test_backoff_caps_grow_to_the_maximum() -> None:
    caps = Backoff(initial=0.5, factor=3.0, maximum=10.0).caps()
    assert [next(caps) for _ in range(6)] == [0.5, 1.5, 4.5, 10.0, 10.0, 10.0]


def test_backoff_full_jitter_stays_under_the_caps() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=8.0)
    for _ in range(50):
        delays = iter(backoff)
        values = [next(delays) for _ in range(6)]
        for value, cap in zip(values, [1, 2, 4, 8, 8, 8], strict=True):
            assert 0.0 <= value <= cap
    # Jitter: the draws are not all equal.
    draws = {next(iter(backoff)) for _ in range(20)}
    assert len(draws) > 1


@pytest.mark.parametrize("kwargs", [{"initial": -1}, {"factor": 0.5}, {"maximum": float("inf")}, {"initial": True}])
def test_backoff_refuses_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_retry_after_forms() -> None:
    from email.utils import formatdate

    class R:
        def __init__(self, value: str) -> None:
            self.response = type("Resp", (), {"headers": wsclient.Headers({"Retry-After": value})})()

    assert retry_after(R("7")) == 7.0
    later = retry_after(R(formatdate(time.time() + 30, usegmt=True)))
    assert later is not None and 25 <= later <= 31
    assert retry_after(R("soon")) is None
    assert retry_after(ValueError()) is None


# --------------------------------------------------------------------------- retry policy


def test_a_server_that_drops_every_connection(raw_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """TCP accepted, then closed before any answer: retried until max_attempts."""
    caplog.set_level(logging.INFO, logger="wsclient")
    server = raw_server([read_request(), close()], handshake=False, connections=3)
    start = time.monotonic()
    with pytest.raises(HandshakeError):
        for _ in wsclient.reconnect(server.url(), backoff=[0.05] * 10, max_attempts=3, timeout=5):
            pytest.fail("no connection should open")
    assert time.monotonic() - start < 0.1 + 3 * 5 + SLACK
    server.join()
    assert len(server.connections) == 3
    attempts = [r.getMessage() for r in caplog.records if "(attempt" in r.getMessage()]
    retries = [r.getMessage() for r in caplog.records if "next attempt in" in r.getMessage()]
    assert len(attempts) == 3 and len(retries) == 2
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "wsclient.reconnect")


def test_503_with_retry_after_is_honoured(httpserver: Any, websockets_server: Any) -> None:
    """The first answer is 503 with Retry-After: 1, the second a redirect to a live server:
    the second request comes no sooner than a second after the first, whatever the backoff."""
    times: list[float] = []
    target = websockets_server.url("/echo")

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return Response("busy", status=503, headers={"Retry-After": "1"})
        return Response("", status=307, headers={"Location": target})

    httpserver.expect_request("/feed").respond_with_handler(handler)
    rc = wsclient.reconnect(_ws(httpserver, "/feed"), backoff=[0.01] * 5, follow_redirects=True, timeout=5)
    for ws in rc:
        ws.send("after 503")
        assert ws.recv(timeout=5) == "after 503"
        rc.stop()
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95
    assert rc.attempts == 2


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_429_and_5xx_are_retried(status: int, httpserver: Any) -> None:
    httpserver.expect_request("/x").respond_with_data("no", status=status)
    with pytest.raises(InvalidStatus) as info:
        for _ in wsclient.reconnect(_ws(httpserver, "/x"), backoff=[0.01] * 5, max_attempts=3, timeout=5):
            pass
    assert info.value.response.status == status
    assert len([r for r, _ in httpserver.log if r.path == "/x"]) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 302])
def test_other_statuses_are_not_retried(status: int, httpserver: Any) -> None:
    httpserver.expect_request("/x").respond_with_data("no", status=status, headers={"Location": "/y"})
    rc = wsclient.reconnect(_ws(httpserver, "/x"), backoff=[5.0] * 5, timeout=5)
    start = time.monotonic()
    with pytest.raises(InvalidStatus) as info:
        for _ in rc:
            pass
    assert info.value.response.status == status
    assert time.monotonic() - start < 2.0
    assert rc.attempts == 1
    assert len([r for r, _ in httpserver.log if r.path == "/x"]) == 1


def test_invalid_url_and_certificate_errors_are_not_retried(
    websockets_tls_server: Any, other_ca_path: str
) -> None:
    with pytest.raises(InvalidURL):
        for _ in wsclient.reconnect("http://127.0.0.1/", backoff=[5.0]):
            pass
    rc = wsclient.reconnect(websockets_tls_server.url(), verify=other_ca_path, backoff=[5.0], timeout=5)
    with pytest.raises(TLSError):
        for _ in rc:
            pass
    assert rc.attempts == 1


def test_default_retry_policy_table() -> None:
    from wsclient.handshake import Headers, Response

    def status(code: int) -> InvalidStatus:
        return InvalidStatus(None, Response(code, "", Headers(), b""))

    assert default_retry(ConnectFailed("refused"))
    assert default_retry(wsclient.ConnectTimeout("slow"))
    assert default_retry(wsclient.ProxyError("502 from the proxy"))
    assert not default_retry(wsclient.ProxyAuthenticationRequired("407"))
    assert not default_retry(InvalidURL("bad"))
    assert default_retry(status(503)) and default_retry(status(429))
    assert not default_retry(status(403)) and not default_retry(status(404))


def test_a_custom_retry_callable(refused_port: int) -> None:
    seen: list[BaseException] = []

    def never(exc: BaseException) -> bool:
        seen.append(exc)
        return False

    with pytest.raises(ConnectFailed):
        for _ in wsclient.reconnect(f"ws://127.0.0.1:{refused_port}/", retry=never, timeout=5):
            pass
    assert len(seen) == 1


# --------------------------------------------------------------------------- open connections


def test_early_closes_wait_for_the_backoff_and_a_finite_iterable_ends(websockets_server: Any) -> None:
    """A server that closes each connection at once: each reconnect waits the next delay;
    when the given delays run out, the iteration ends."""
    url = websockets_server.url("/close", code=1000, count=1)
    opened: list[float] = []
    start = time.monotonic()
    for ws in wsclient.reconnect(url, backoff=[0.3, 0.3], timeout=5):
        with ws:
            opened.append(time.monotonic())
            assert list(ws) == ["message 0"]
    assert len(opened) == 3
    assert opened[1] - opened[0] >= 0.3 and opened[2] - opened[1] >= 0.3
    assert time.monotonic() - start < 0.6 + 3 + SLACK


class CountingBackoff:
    """Delays of 0.05 s; counts how often the loop starts the sequence again."""

    maximum = 0.4

    def __init__(self) -> None:
        self.starts = 0

    def __iter__(self) -> Any:
        import itertools

        self.starts += 1
        return itertools.repeat(0.05)


def test_backoff_resets_after_a_stable_connection(websockets_server: Any) -> None:
    backoff = CountingBackoff()
    rc = wsclient.reconnect(websockets_server.url("/echo"), backoff=backoff, timeout=5)
    for n, ws in enumerate(rc):
        with ws:
            if n == 0:
                time.sleep(0.6)  # stable: longer than maximum
            if n == 2:
                rc.stop()
    # Started once, again after the stable first connection; the short second one did not.
    assert backoff.starts == 2
    assert rc.attempts == 3


def test_stop_during_a_long_backoff(refused_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsclient")
    rc = wsclient.reconnect(f"ws://127.0.0.1:{refused_port}/", backoff=[60.0], timeout=5)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(list(rc)))
    thread.start()
    deadline = time.monotonic() + 10
    while not any("next attempt in" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the first attempt never failed"
        time.sleep(0.02)
    start = time.monotonic()
    rc.stop()
    thread.join(1.0 + SLACK)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0 + SLACK
    assert result == [[]]
    assert rc.attempts == 1


def test_stop_aborts_an_opening_in_progress(raw_server: Any) -> None:
    """A server that reads the request and never answers; timeout=30: stop() ends the
    opening at once instead of waiting for the timeout."""
    from rawserver import signal, wait_eof

    asked = threading.Event()
    server = raw_server([read_request(), signal(asked), wait_eof(20, required=False)], handshake=False)
    rc = wsclient.reconnect(server.url(), timeout=30, backoff=[60.0])
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(list(rc)))
    thread.start()
    assert asked.wait(10)
    start = time.monotonic()
    rc.stop()
    thread.join(1.0 + SLACK)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0 + SLACK
    assert result == [[]]
    rc.join(5)
    server.stop()


def test_stop_from_another_thread_closes_the_open_connection_with_1001(websockets_server: Any) -> None:
    url = websockets_server.url("/echo")
    rc = wsclient.reconnect(url, timeout=5)
    received: list[Any] = []
    for ws in rc:
        with ws:
            threading.Timer(0.3, rc.stop).start()
            for message in ws:  # ends quietly when stop() closes it
                received.append(message)
    record = websockets_server.wait_event("close", url)
    assert record["code"] == 1001
    assert rc.stopped and received == []
    rc.join(5)


def test_breaking_out_closes_the_connection(websockets_server: Any) -> None:
    url = websockets_server.url("/echo")
    rc = wsclient.reconnect(url, timeout=5)
    for _ws in rc:
        break
    # The generator is closed when the for statement drops it (CPython frees it at once).
    assert rc.connection is not None and not rc.connection.connected
    assert websockets_server.wait_event("close", url)["code"] == 1001


def test_a_reconnect_object_is_iterated_once(refused_port: int) -> None:
    rc = wsclient.reconnect(f"ws://127.0.0.1:{refused_port}/", max_attempts=1, timeout=5)
    with pytest.raises(ConnectFailed):
        list(rc)
    with pytest.raises(RuntimeError):
        iter(rc)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        wsclient.reconnect("ws://127.0.0.1/", max_attempts=0)
    with pytest.raises(TypeError):
        wsclient.reconnect("ws://127.0.0.1/", retry=5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the event API


def test_client_reconnect_fires_events_per_attempt(raw_server: Any, websockets_server: Any) -> None:
    """Two failed openings (a dropping server), then stop(): a reconnect event before each
    wait, connect_failed for each failure; no thread left behind after join()."""
    server = raw_server([read_request(), close()], handshake=False, connections=10)
    client = wsclient.WebSocketClient()
    events: list[tuple[str, Any]] = []
    two = threading.Event()

    @client.on("reconnect")
    def on_reconnect(attempt: int, delay: float, error: Any) -> None:
        events.append(("reconnect", (attempt, delay, type(error).__name__)))
        if attempt == 2:
            two.set()

    client.on("connect_failed", lambda error: events.append(("connect_failed", type(error).__name__)))
    handle = client.reconnect(server.url(), request_options={"timeout": 5}, backoff=[0.05, 0.05, 30.0])
    assert two.wait(10)
    handle.stop()
    handle.join(5)
    assert handle.thread is not None and not handle.thread.is_alive()
    kinds = [kind for kind, _ in events]
    assert kinds[:4] == ["connect_failed", "reconnect", "connect_failed", "reconnect"]
    assert events[1][1][:1] == (1,) and events[1][1][2] == "HandshakeError"
    server.stop()


def test_client_reconnect_keeps_a_connection_and_stop_closes_it(websockets_server: Any) -> None:
    url = websockets_server.url("/close", code=1000, count=0)
    client = wsclient.WebSocketClient()
    connections: list[Any] = []
    reconnects: list[tuple[int, float, Any]] = []
    third = threading.Event()

    @client.on("connect")
    def on_connect(conn: Any) -> None:
        connections.append(conn)
        if len(connections) == 3:
            third.set()

    client.on("reconnect", lambda *args: reconnects.append(args))
    handle = client.reconnect(url, backoff=Backoff(initial=0.05, factor=1.0, maximum=5.0))
    assert third.wait(10)
    handle.stop()
    handle.join(5)
    assert handle.thread is not None and not handle.thread.is_alive()
    # Each early close (the server closes at once) led to a reconnect event without error.
    assert len(reconnects) >= 2 and all(error is None for _, _, error in reconnects)
    assert handle.error is None


def test_client_reconnect_reports_a_refused_failure(httpserver: Any) -> None:
    httpserver.expect_request("/x").respond_with_data("no", status=403)
    client = wsclient.WebSocketClient()
    handle = client.reconnect(_ws(httpserver, "/x"), backoff=[5.0])
    assert handle.thread is not None
    handle.thread.join(5)
    assert isinstance(handle.error, InvalidStatus) and handle.error.response.status == 403


def test_client_reconnect_validates_at_once() -> None:
    client = wsclient.WebSocketClient()
    with pytest.raises(InvalidURL):
        client.reconnect("http://127.0.0.1/")
    with pytest.raises(ValueError):
        client.reconnect("ws://127.0.0.1/", headers={"X": "a\nb"})
