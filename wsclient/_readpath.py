"""The read path: the one place that reads the socket and feeds the protocol.

The reader thread, a consumer reading directly in ``recv()`` and a close on the caller's
thread all call :meth:`ReadPath.read`; nothing else calls ``recv`` on a WebSocket's socket.
Callers hold the connection's read lock (one reader of the socket at a time).

Also here: waiting for a stream to become readable or writable with a bound (``poll``, so
that any descriptor number works), for TLS and proxy streams too (their ``pending()`` bytes
count as readable).
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

from .inbox import Inbox
from .protocol import Event, Protocol

__all__ = ["ReadPath", "wait_readable", "wait_writable"]

#: A read's usual size.
RECV_SIZE = 1 << 16
# After a short read the next one asks for this much: an idle connection blocked in recv()
# then holds a small buffer instead of 64 KiB. 479 bytes make a bytes object of exactly 512,
# the largest size Python's small-object allocator serves: at 512 bytes (545 with the
# object's header) every read went to malloc() and realloc() instead, ~900 instructions of
# an echo round trip. A larger message costs one more read, after which reads are 64 KiB.
SMALL_RECV_SIZE = 479
# The largest read of a large frame's payload when it cannot be read in one piece.
BIG_RECV_SIZE = 1 << 22

_HAS_POLL = hasattr(select, "poll")
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where there is none (Windows)


def _poll(sock: Any, events: int, timeout: float | None) -> bool:
    if _HAS_POLL:
        poller = select.poll()
        poller.register(sock, events)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return bool(poller.poll(ms))
    rlist = [sock] if events & 1 else []
    wlist = [] if events & 1 else [sock]
    r, w, _ = select.select(rlist, wlist, [], timeout)
    return bool(r or w)


def wait_readable(sock: Any, timeout: float | None) -> bool:
    """Whether ``sock`` has bytes (or EOF) to read within ``timeout`` seconds."""
    pending = getattr(sock, "pending", None)
    if pending is not None and pending() > 0:
        return True
    return _poll(sock, select.POLLIN if _HAS_POLL else 1, timeout)


def wait_writable(sock: Any, timeout: float) -> bool:
    """Whether ``sock`` can take a small write without blocking within ``timeout``.

    Linux reports a TCP socket writable while at least a third of its send buffer is
    free, so a control frame (at most 131 bytes, one TLS record) then fits without waiting.
    """
    return _poll(sock, select.POLLOUT if _HAS_POLL else 4, timeout)


class ReadPath:
    """Reads one chunk of the socket and feeds it to the protocol.

    Args:
        sock: the connected stream (a socket, an ``ssl.SSLSocket`` or a proxy stream).
        protocol: the connection's protocol.
        proto_lock: guards the protocol's closing state; held while feeding it.
        inbox: paused while a read was in flight: the bytes wait until resumed.
    """

    def __init__(self, sock: Any, protocol: Protocol, proto_lock: threading.Lock, inbox: Inbox) -> None:
        self._sock = sock
        self._protocol = protocol
        self._proto_lock = proto_lock
        self._inbox = inbox
        # Plain TCP takes recv() flags (MSG_WAITALL); TLS and proxy streams do not.
        self.plain = type(sock) is socket.socket
        self._recv_size = SMALL_RECV_SIZE
        self._after_big = False
        self._primed = False  # the protocol parsed the bytes that came with the 101
        # Set when an exception from a signal handler ended a read after bytes were taken
        # from the socket (see interrupted): every later read fails.
        self.broken = False

    def read(self, timeout: float | None = None, *, whole: bool = False) -> list[Event] | None:
        """Read once and feed the protocol; the caller holds the read lock.

        Args:
            timeout: None blocks in ``recv`` until bytes come; a number waits at most that
                long for the socket to become readable and returns None if it did not.
            whole: the caller has no deadline (the reader thread), so the rest of a large
                frame may be read in one blocking read (plain TCP only).

        At EOF the protocol's ``receive_eof()`` is called (``protocol.eof`` becomes True).
        ``OSError`` propagates.
        """
        sock = self._sock
        proto = self._protocol
        if self.broken:
            raise ConnectionAbortedError("a read was interrupted part-way; the connection is lost")
        if not self._primed:
            # The first read parses what the server sent with its 101, before anything
            # else: a message glued to the handshake arrives even if nothing follows.
            self._primed = True
            with self._proto_lock:
                events = proto.receive_data(b"")
            if events:
                return events
        if timeout is None:
            data = self._recv(sock, whole)
        else:
            data = None
            if self.plain and _DONTWAIT:
                # A read without waiting first: when the bytes are there already (the
                # peer's close answer, a recv(timeout=0) poll) this saves the poll()
                # system call; connect + close makes two such reads.
                try:
                    data = self._recv(sock, False, _DONTWAIT)
                except BlockingIOError:
                    data = None
            if data is None:
                if not wait_readable(sock, timeout):
                    return None
                data = self._recv(sock, False)
        if not data:
            with self._proto_lock:
                proto.receive_eof()
            return []
        if timeout is None and self._inbox.paused:
            # Paused while this read was in flight: hold the bytes until resumed (a read
            # with a deadline feeds them: its caller cannot wait).
            self._inbox.wait_resumed()
        lock = self._proto_lock
        try:
            # acquire()/release() rather than ``with``: the with statement looks up and
            # binds __enter__/__exit__ on every read (~300 instructions of an echo's ~24k).
            lock.acquire()
            try:
                return proto.receive_data(data)
            finally:
                lock.release()
        except BaseException:
            self.interrupted()
            raise

    def interrupted(self) -> None:
        """An exception other than ``OSError`` (Ctrl-C, a signal handler's, on the
        consumer's thread) ended a read after its bytes were taken from the socket, or
        while they were parsed or handed on: they are lost, and the protocol may be in the
        middle of a frame. The connection cannot go on: the socket is shut down, and this
        read path raises ``ConnectionAbortedError`` from then on (the connection ends with
        1006)."""
        self.broken = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def _recv(self, sock: Any, whole: bool, flags: int = 0) -> bytes:
        proto = self._protocol
        pending = proto.pending_bytes
        if pending > RECV_SIZE:
            if whole and self.plain and proto.pending_whole:
                # The rest of a large frame in one read, without Python in between and
                # without joining chunks (recv 64 x 16 MiB reached 127 % of a raw socket's
                # throughput with it, docs/benchmarks.md). Only without a deadline: the
                # read waits for the whole frame.
                self._after_big = True
                return sock.recv(pending, socket.MSG_WAITALL)  # type: ignore[no-any-return]
            return sock.recv(min(pending, BIG_RECV_SIZE), flags)  # type: ignore[no-any-return]
        if self._after_big and proto.idle:
            # After a large frame, read only the next header (at most 10 bytes from a
            # server): if another large frame follows, its payload then arrives in one
            # piece that becomes the message without being copied.
            head: bytes = sock.recv(10, flags)
            self._after_big = False
            return head
        size = self._recv_size
        data: bytes = sock.recv(size, flags)
        self._recv_size = RECV_SIZE if len(data) == size else SMALL_RECV_SIZE
        return data
