"""The shared timer thread: runs callbacks in order, cancels, and exits when idle."""

from __future__ import annotations

import threading
import time

from wsclient import _timer


def _timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wsclient-timer"]


def test_callbacks_run_in_deadline_order_and_cancel_works() -> None:
    ran: list[str] = []
    done = threading.Event()
    _timer.schedule(0.06, lambda: (ran.append("c"), done.set()))
    _timer.schedule(0.02, lambda: ran.append("a"))
    cancelled = _timer.schedule(0.03, lambda: ran.append("x"))
    _timer.schedule(0.04, lambda: ran.append("b"))
    cancelled.cancel()
    assert done.wait(2)
    assert ran == ["a", "b", "c"]


def test_a_failing_callback_does_not_kill_the_thread() -> None:
    done = threading.Event()
    _timer.schedule(0.01, lambda: 1 / 0)
    _timer.schedule(0.02, done.set)
    assert done.wait(2)


def test_thread_exits_after_lingering_when_nothing_is_live() -> None:
    t = _timer.schedule(0.2, lambda: None)
    assert _timer_threads()
    t.cancel()
    t.cancel()  # a second cancel is a no-op
    deadline = time.monotonic() + 0.2 + _timer.LINGER + 2
    while _timer_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _timer_threads()
