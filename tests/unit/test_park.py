"""The reader's park (wsclient._direct.Park) on its own: no socket, one waiting thread."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from wsclient._direct import PARK, Park
from wsclient.protocol import State


def _conn(state: State = State.OPEN) -> Any:
    return SimpleNamespace(_aborted=False, _protocol=SimpleNamespace(state=state))


def _wait_in_thread(park: Park, conn: Any) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def target() -> None:
        start = time.monotonic()
        park.wait_parked(conn)
        took.append(time.monotonic() - start)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, took


def test_not_parked_returns_at_once() -> None:
    park = Park()
    start = time.monotonic()
    park.wait_parked(_conn())
    assert time.monotonic() - start < 0.01


def test_hold_parks_the_reader_for_park_seconds() -> None:
    park = Park()
    park.hold()
    start = time.monotonic()
    park.wait_parked(_conn())
    assert PARK - 0.005 <= time.monotonic() - start < PARK + 0.5


def test_unpark_wakes_the_reader_at_once() -> None:
    park = Park()
    park.until = time.monotonic() + 30
    thread, took = _wait_in_thread(park, _conn())
    time.sleep(0.05)
    park.unpark()
    thread.join(2)
    assert took and took[0] < 1.0
    assert park.until == 0.0


def test_unpark_twice_and_a_stale_wake_up_are_harmless() -> None:
    park = Park()
    park.until = time.monotonic() + 30
    park.unpark()
    park.until = time.monotonic() + 30
    park.unpark()  # released already: no error
    # The wake-up left pending is used up by one loop; the reader then waits for the new
    # deadline, and another unpark still wakes it.
    park.until = time.monotonic() + 30
    thread, took = _wait_in_thread(park, _conn())
    time.sleep(0.1)
    assert not took
    park.unpark()
    thread.join(2)
    assert took and took[0] < 1.0


def test_a_closing_connection_is_not_parked() -> None:
    park = Park()
    park.until = time.monotonic() + 30
    start = time.monotonic()
    park.wait_parked(_conn(State.CLOSING))
    assert time.monotonic() - start < 0.01
