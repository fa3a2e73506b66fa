"""The shared timer thread: runs callbacks in order, cancels, and exits when idle."""

from __future__ import annotations

import threading
import time

import pytest

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


@pytest.mark.parametrize("launched", [False, True], ids=["before-launch", "after-launch"])
def test_an_interrupted_start_leaves_the_timer_usable(monkeypatch: pytest.MonkeyPatch, launched: bool) -> None:
    """Ctrl-C inside Thread.start() must not leave the process without a timer thread
    (keepalive and close_timeout of every later connection would never fire)."""
    timers = _timer._TimerThread()
    real_start = threading.Thread.start

    def interrupted_start(self: threading.Thread) -> None:
        if launched:
            real_start(self)
        raise KeyboardInterrupt

    ran: list[str] = []
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        timers.schedule(0.01, lambda: ran.append("interrupted"))
    monkeypatch.undo()
    done = threading.Event()
    timers.schedule(0.02, lambda: (ran.append("next"), done.set()))
    assert done.wait(2)
    time.sleep(0.05)
    assert ran == ["next"]  # the interrupted schedule's callback never runs
