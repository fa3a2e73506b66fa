"""Direct reads: a consumer waiting in ``recv()`` reads the socket itself.

This is the one place that decides them. On a plain TCP socket with no listener, a
consumer that finds the inbox empty reads the socket on its own thread (through the read
path, under the connection's read lock) instead of waiting for the reader thread to hand
the message over, and the reader thread steps aside (:class:`Park`) while it does.

Direct reads save a thread hand-off per message: 10k echo round trips of 16 B took
0.45-0.51 s with them and 0.83-1.01 s without (3 runs each, same machine, DIRECT_READS
on/off).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .protocol import State

if TYPE_CHECKING:
    from .connection import WebSocketConnection

__all__ = ["DIRECT_READS", "READ_SOMETHING", "Park", "can_read_directly", "read_direct"]

#: Let a consumer waiting in ``recv()`` read a plain TCP socket itself (see
#: :func:`read_direct`). Read when a connection is made; tests turn it off to check the
#: other path.
DIRECT_READS = True
# While a consumer reads directly, the reader thread leaves the socket to it for this long
# after its last read: pings and the peer's close are then handled at most this late when
# nobody is in recv().
PARK = 0.05

# Looked up once: State.OPEN goes through the enum metaclass's __getattr__ hook (Python
# 3.11), ~160 instructions per look in the echo cell's path.
_OPEN = State.OPEN
_monotonic = time.monotonic

#: :func:`read_direct` read something, but no message to return.
READ_SOMETHING: Any = object()


class Park:
    """The reader thread's step aside: it waits here while a consumer reads directly.

    A lock serves as the wake-up signal instead of a condition, which cost about 1 KiB
    more per connection (mostly its waiters' deque: a connection's objects measured 8.6
    KiB with it, 7.7 KiB without, tracemalloc): it is held while no wake-up is pending,
    and :meth:`unpark` releases it. The reader checks
    :attr:`until` again after every wake-up, so a stale one only costs a loop.
    """

    __slots__ = ("_wake", "until")

    def __init__(self) -> None:
        #: Until when (``time.monotonic()``) the reader leaves the socket; 0.0: it reads.
        #: A plain float, read and written without a lock.
        self.until = 0.0
        # Released to wake the reader out of wait_parked; held while no wake-up is pending.
        self._wake = threading.Lock()
        self._wake.acquire()

    def hold(self) -> None:
        """A consumer reads directly: the reader leaves it the socket for PARK more seconds."""
        self.until = time.monotonic() + PARK

    def unpark(self) -> None:
        """Make the reader thread take the socket back now."""
        if self.until:
            self.until = 0.0
            try:
                self._wake.release()
            except RuntimeError:  # released already: a wake-up is pending
                pass

    def wait_parked(self, conn: WebSocketConnection) -> None:
        """Reader thread: leave the socket to a consumer reading directly, until it stops
        (or ``conn`` is aborted or no longer open: whoever does that calls :meth:`unpark`)."""
        wake = self._wake
        while True:
            left = self.until - time.monotonic()
            if left <= 0 or conn._aborted or conn._protocol.state is not _OPEN:
                return
            wake.acquire(timeout=left)


def can_read_directly(conn: WebSocketConnection) -> bool:
    """Whether a consumer of ``conn`` waiting in ``recv()`` may read the socket itself."""
    # Direct reads dispatch events on the consumer's thread, so only with no listener at
    # all (listeners run on the reader thread), and only while open and not paused.
    return (
        conn._direct
        and not conn._listeners
        and not conn._inbox.paused
        and not conn._aborted
        and conn._protocol.state is _OPEN
        and not conn._protocol.eof
    )


def read_direct(conn: WebSocketConnection, timeout: float | None) -> Any:
    """Read ``conn``'s socket on the consumer's thread (the read lock held).

    Returns the first message read (the others go to the inbox), :data:`READ_SOMETHING`
    when the read brought no message (a partial frame, control frames: handled here), or
    None when the socket had nothing within ``timeout`` or the stream ended (the reader
    thread then finishes the connection).
    """
    park = conn._park
    park.until = _monotonic() + PARK  # park.hold(), inline: once per message read
    try:
        events = conn._readpath.read(timeout, whole=timeout is None)
    except OSError:
        park.unpark()  # the reader thread reads the error again and ends the connection
        return None
    except BaseException:
        park.unpark()  # interrupted: the reader thread takes the socket back
        raise
    if events is None:
        return None
    if not events:
        if conn._protocol.eof:
            park.unpark()
            return None
        return READ_SOMETHING
    try:
        first = events[0]
        if not conn._message_listeners and (type(first) is str or type(first) is bytes):
            if len(events) == 1:  # the common case needs no queue round trip
                return first
            if all(type(e) is str or type(e) is bytes for e in events):
                conn._inbox.put(events[1:], wait=False)
                return first
        bound = conn._config.close_timeout if timeout is None else timeout
        conn._handle(events, on_reader=False, bound=bound)
    except BaseException:  # interrupted while handing the events on: they would be lost
        conn._readpath.interrupted()
        park.unpark()
        raise
    return READ_SOMETHING
