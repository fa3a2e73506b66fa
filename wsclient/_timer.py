"""One timer thread for the whole process: close timeouts and keepalive deadlines.

The thread starts when the first deadline is scheduled and exits once no live deadline has
been left for ``LINGER`` seconds (a cancelled timer is noticed when its deadline comes), so an idle process keeps no wsclient thread, while a
program that opens connections one after another does not start a thread for each. Callbacks run on the timer thread and
must be short (they shut a socket down or send a ping without waiting).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Timer", "cancel", "schedule"]

logger = logging.getLogger("wsclient.timer")

#: Seconds the thread stays after its last live deadline went away.
LINGER = 1.0


class Timer:
    """A handle to a scheduled callback; :meth:`cancel` it if it is no longer needed."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        cancel(self)


class _TimerThread:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._cond = threading.Condition(threading.Lock())
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._live = 0  # scheduled, not cancelled, not yet run
        self._wake_at = 0.0  # when the thread's current wait ends

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (timer.when, next(self._counter), timer))
            self._live += 1
            if self._thread is None:
                try:
                    self._thread = threading.Thread(target=self._run, name="wsclient-timer", daemon=True)
                    self._wake_at = timer.when
                    self._thread.start()
                except BaseException:
                    # Interrupted (Ctrl-C in the main thread lands inside Thread.start()),
                    # or no thread could be made: forget this timer and the thread, so
                    # that the next schedule() starts one (otherwise no timer of the
                    # process would ever run again). A thread launched all the same
                    # finds itself disowned in _run and ends.
                    self._thread = None
                    timer.cancelled = True
                    self._live -= 1
                    raise
            elif timer.when < self._wake_at:  # earlier than the thread plans to wake up
                self._wake_at = timer.when
                self._cond.notify()
        return timer

    def cancel(self, timer: Timer) -> None:
        """Cancel ``timer`` (no-op if it ran or was cancelled)."""
        # No wake-up: the thread finds the timer cancelled when its deadline comes, and
        # starts lingering then if nothing else is live.
        with self._cond:
            if timer.cancelled:
                return
            timer.cancelled = True
            self._live -= 1

    def _run(self) -> None:
        with self._cond:  # the start completed, or was undone (schedule)
            if self._thread is not threading.current_thread():
                return
        heap = self._heap
        idle_since: float | None = None
        while True:
            with self._cond:
                if self._live <= 0:
                    # Only cancelled timers (or none) are left: drop them, linger, exit.
                    heap.clear()
                    now = time.monotonic()
                    if idle_since is None:
                        idle_since = now
                    if now - idle_since >= LINGER:
                        self._thread = None
                        return
                    self._wake_at = idle_since + LINGER
                    self._cond.wait(LINGER - (now - idle_since))
                    continue
                idle_since = None
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                wait = heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake_at = heap[0][0]
                    self._cond.wait(wait)
                    continue
                timer = heapq.heappop(heap)[2]
                timer.cancelled = True  # it runs now: a later cancel() does nothing
                self._live -= 1
            try:
                timer.callback()
            except Exception:  # a callback must never kill the shared thread
                logger.exception("timer callback %r failed", timer.callback)


_timer = _TimerThread()


def _reset_in_child() -> None:
    # After fork() the child has no timer thread, but the parent's object says it has one
    # (and its lock may be held): a fresh one starts when the child schedules a deadline.
    global _timer
    _timer = _TimerThread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def schedule(delay: float, callback: Callable[[], None]) -> Timer:
    """Run ``callback`` on the shared timer thread after ``delay`` seconds."""
    return _timer.schedule(delay, callback)


def cancel(timer: Timer | None) -> None:
    """Cancel ``timer`` if it is not None."""
    if timer is not None and not timer.cancelled:
        _timer.cancel(timer)
