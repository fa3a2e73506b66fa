"""One timer thread for the whole process: close timeouts and keepalive deadlines.

The thread starts when the first deadline is scheduled and exits as soon as no deadline is
left, so an idle process keeps no wsclient thread. Callbacks run on the timer thread and
must be short (they shut a socket down or send a ping without waiting).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer", "cancel", "schedule"]

logger = logging.getLogger("wsclient.timer")


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

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (timer.when, next(self._counter), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wsclient-timer", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def wake(self) -> None:
        """Let the thread drop cancelled timers now (and exit if none is left)."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                if not heap:
                    self._thread = None
                    return
                wait = heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                timer = heapq.heappop(heap)[2]
            try:
                timer.callback()
            except Exception:  # a callback must never kill the shared thread
                logger.exception("timer callback %r failed", timer.callback)


_timer = _TimerThread()


def schedule(delay: float, callback: Callable[[], None]) -> Timer:
    """Run ``callback`` on the shared timer thread after ``delay`` seconds."""
    return _timer.schedule(delay, callback)


def cancel(timer: Timer | None) -> None:
    """Cancel ``timer`` if it is not None; the thread exits when nothing is left."""
    if timer is not None and not timer.cancelled:
        timer.cancelled = True
        _timer.wake()
