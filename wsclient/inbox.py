"""The inbox: the bounded queue between the thread that reads the socket and ``recv()``.

It owns the message queue, back-pressure (the reader waits while ``max_queue`` messages
are waiting), pause/resume, the failure marker, and the end of the stream. It knows nothing
of sockets or protocols, so it is tested on its own (``tests/unit/test_inbox.py``).

One thread puts (the reader, or a consumer reading the socket directly); any number of
threads get. Every wait is bounded: a ``get`` by its timeout, a ``put`` and
``wait_resumed`` by :meth:`Inbox.release` / :meth:`Inbox.close`,
which the connection calls when it closes, so no thread stays blocked here once the
connection ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["FAILURE", "Inbox", "InboxClosed"]


class _Marker:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<inbox.FAILURE>"


#: Queued after the messages that preceded a protocol failure: the consumer reaches it once
#: it has read them, and the connection then sends the failure's close frame.
FAILURE: Any = _Marker()


class InboxClosed(Exception):
    """The stream ended and every queued message was taken."""


class Inbox:
    """A bounded queue of received messages (``str`` / ``bytes``, or :data:`FAILURE`).

    Args:
        max_queue: the reader waits in :meth:`put` while this many messages wait.
    """

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        # Guards every field below; getters wait on it for messages, the putter for room
        # and for resume().
        self._cond = threading.Condition(threading.Lock())
        #: The messages, oldest first. Only the methods below change it; public for a look
        #: without a call (``if inbox.queue:``, recv()'s empty-queue test). popleft()
        #: without the lock is safe (deque operations are atomic): get_nowait() uses it as
        #: the fast path.
        self.queue: deque[Any] = deque()
        self._getters = 0  # threads waiting in get()
        self._putter_waiting = False  # the putter waits for room
        #: pause() called and not resumed (a plain attribute: read on every recv()).
        self.paused = False
        self._released = False  # back-pressure off: put() never waits again
        #: The stream ended: get() raises once the queue is empty.
        self.closed = False

    # ------------------------------------------------------------------ consumer side

    def get_nowait(self) -> Any | None:
        """The oldest message, or None when the queue is empty (never blocks)."""
        q = self.queue
        if not q:
            return None
        try:
            msg = q.popleft()
        except IndexError:  # another getter took it
            return None
        if self._putter_waiting and len(q) < self.max_queue:
            # Only once there is room: a read of 64 KiB holds thousands of small
            # messages, and a lock round per message cut recv 100k x 16 B from 23.9x
            # to 7.5x websocket-client (benchmarks/, 3 rounds).
            self._wake_putter()
        return msg

    def get(self, timeout: float | None = None) -> Any:
        """The oldest message, waiting up to ``timeout`` seconds (None: for ever).

        Raises:
            TimeoutError: nothing arrived in time.
            InboxClosed: the stream ended and the queue is empty.
        """
        q = self.queue
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not q:
                if self.closed:
                    raise InboxClosed()
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no message within {timeout} seconds")
                self._getters += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._getters -= 1
            msg = q.popleft()
            if self._putter_waiting and len(q) < self.max_queue:
                self._putter_waiting = False
                self._cond.notify_all()
            return msg

    def _wake_putter(self) -> None:
        with self._cond:
            if self._putter_waiting and len(self.queue) < self.max_queue:
                # Cleared here, not by the putter when it runs again: until then every
                # get_nowait() would take the lock to wake it once more (recv 100k x 1 KiB
                # text: about half of the messages did, 1.5 us each).
                self._putter_waiting = False
                self._cond.notify_all()

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def has_getters(self) -> bool:
        """Whether a thread waits in :meth:`get`."""
        return self._getters > 0

    # ------------------------------------------------------------------ putter side

    def put(self, messages: Iterable[Any], *, wait: bool = True) -> None:
        """Queue ``messages`` (in order), then, with ``wait``, wait while the queue is full.

        Waiting ends when a consumer makes room, or at :meth:`release` or :meth:`close`. The queue may exceed ``max_queue`` by one batch: the putter reads
        the socket in batches and only stops before the next read.
        """
        q = self.queue
        # Under the lock: a getter checks the queue and starts waiting under it, so the
        # notify cannot fall between the two (one lock round per batch, not per message).
        with self._cond:
            q.extend(messages)
            if self._getters:
                self._cond.notify()
        if wait and len(q) >= self.max_queue and not self._released:
            with self._cond:
                while len(q) >= self.max_queue and not self._released:
                    self._putter_waiting = True
                    self._cond.wait()
                self._putter_waiting = False

    def put_failure(self) -> None:
        """Queue :data:`FAILURE` after the messages already queued (never waits)."""
        self.put([FAILURE], wait=False)

    # ------------------------------------------------------------------ pause / resume

    def pause(self) -> None:
        """Ask the reader to stop reading (see :meth:`wait_resumed`)."""
        with self._cond:
            self.paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        with self._cond:
            self.paused = False
            self._cond.notify_all()

    def wait_resumed(self) -> None:
        """Block while paused, until :meth:`resume`, :meth:`release` or :meth:`close`."""
        if not self.paused:
            return
        with self._cond:
            while self.paused and not self._released:
                self._cond.wait()

    # ------------------------------------------------------------------ the end

    def release(self) -> None:
        """Turn back-pressure and pause off for good: the connection is closing, the
        reader must read the peer's answer (later data is dropped before it gets here)."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def close(self) -> None:
        """The stream ended: getters drain the queue, then get :class:`InboxClosed`."""
        with self._cond:
            self._released = True
            self.closed = True
            self._cond.notify_all()
