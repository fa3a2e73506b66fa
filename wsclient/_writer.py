"""The write side of a connection: the send lock and every write to the socket but one.

:class:`Writer` owns the send lock and the ways a frame reaches the socket: a sender's
write of any size (sliced, or scatter-gathered, so that keepalive sees progress), and the
bounded write of a small frame the library makes by itself (pong, keepalive ping, close
frames), which never waits longer than its deadline for the socket to take it.

The one write not here is the fast path of ``WebSocketConnection.send()`` (one small
frame, one ``sendall``): it stays inline there, using the lock and socket the connection
caches from this writer, because a method call per message is measurable. The writer
knows nothing of the connection's state: the connection decides whether to write, and
maps a failed write to ``ConnectionClosed``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from ._readpath import wait_writable

__all__ = ["WRITE_SLICE", "Writer", "sendmsg_all"]

_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where there is none (Windows)

# Large writes go out in slices of this size so that keepalive sees progress on a slow but
# live peer (a slice written is a sign of life).
WRITE_SLICE = 1 << 18
_IOV_BATCH = 64  # pieces per sendmsg() call (well under IOV_MAX)
# Pieces taken from a message's frames per write: 16 fragments (header + payload each), 256 KiB
# at the default 16 KiB fragmentation threshold (see Protocol.encode_message_stream).
_GROUP_PIECES = 32
# How long a sender waits for the send lock between looks at whether the connection ended.
_SEND_LOCK_POLL = 0.1


def sendmsg_all(sock: socket.socket, pieces: list[bytes], progress: Callable[[], None]) -> None:
    """Write every piece, in order, with as few ``sendmsg`` calls as the kernel allows."""
    views = [memoryview(p) for p in pieces]
    i = 0
    count = len(views)
    while i < count:
        sent = sock.sendmsg(views[i : i + _IOV_BATCH])
        progress()
        while sent:
            size = len(views[i])
            if sent >= size:
                sent -= size
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0


class Writer:
    """Writes one connection's frames to its socket.

    Args:
        sock: the connected stream (a socket, an ``ssl.SSLSocket`` or a proxy stream).
        plain: ``sock`` is a plain TCP socket (``sendmsg`` works on it).

    Every write calls ``progress`` once some bytes went out: the connection stamps it as
    keepalive's sign of life.
    """

    __slots__ = ("lock", "plain", "sock")

    def __init__(self, sock: Any, plain: bool) -> None:
        self.sock = sock
        self.plain = plain
        # Serialises writes to the socket, so that the frames of one message never
        # interleave with another's; held across sendall (see acquire for the bounds).
        self.lock = threading.Lock()

    def acquire(self, timeout: float | None, ended: Callable[[], bool]) -> bool:
        """Take the send lock within ``timeout`` (None: until ``ended()`` is true).

        False when it could not. Without a timeout it looks at ``ended()`` every
        0.1 s: once the connection is aborted or finished, the holder's write is being
        ended by the shutdown, and nobody waits on a dead connection.
        """
        lock = self.lock
        if timeout is not None:
            return lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        while not lock.acquire(timeout=_SEND_LOCK_POLL):
            if ended():
                return False
        return True

    def write(self, data: bytes | Iterable[bytes], progress: Callable[[], None]) -> None:
        """Write ``data`` (one buffer, or pieces taken in order); the caller holds the lock.

        Pieces are taken _GROUP_PIECES at a time, so a fragmented message from
        ``Protocol.encode_message_stream`` is masked just ahead of its write. ``OSError``
        propagates.
        """
        assert self.lock.locked()
        sock = self.sock
        plain = self.plain
        pieces = iter((data,)) if isinstance(data, bytes) else iter(data)
        while True:
            group = list(islice(pieces, _GROUP_PIECES))
            if not group:
                return
            if len(group) > 1 and plain:
                # Many pieces on a plain socket: scatter-gather writes, no copy.
                sendmsg_all(sock, group, progress)
                continue
            # One piece, or many on a TLS stream: a few large writes, not one a frame,
            # each at most WRITE_SLICE (progress for keepalive).
            batch: list[bytes] = []
            size = 0
            for chunk in group:
                if len(chunk) > WRITE_SLICE:
                    if batch:
                        sock.sendall(b"".join(batch))
                        batch, size = [], 0
                    view = memoryview(chunk)
                    for start in range(0, len(view), WRITE_SLICE):
                        sock.sendall(view[start : start + WRITE_SLICE])
                        progress()
                    continue
                batch.append(chunk)
                size += len(chunk)
                if size >= WRITE_SLICE:
                    sock.sendall(b"".join(batch))
                    progress()
                    batch, size = [], 0
            if batch:
                sock.sendall(b"".join(batch) if len(batch) > 1 else batch[0])
                progress()

    def write_batch(self, messages: Iterable[bytes | Iterable[bytes]], progress: Callable[[], None]) -> None:
        """Write several messages' frames (as ``Protocol.encode_message_stream`` returns
        them, encoded as they are taken), in order; the caller holds the lock.

        Consecutive single-frame messages are joined into one write; the buffer is
        written whenever it reaches WRITE_SLICE, before a fragmented message, and at the
        end. ``OSError`` propagates.
        """
        pending: list[bytes] = []
        size = 0
        for frames in messages:
            if type(frames) is bytes:
                pending.append(frames)
                size += len(frames)
                if size < WRITE_SLICE:
                    continue
                frames = b""
            if pending:
                self.write(b"".join(pending) if len(pending) > 1 else pending[0], progress)
                pending, size = [], 0
            if frames:
                self.write(frames, progress)
        if pending:
            self.write(b"".join(pending) if len(pending) > 1 else pending[0], progress)

    def write_bounded(
        self, make: Callable[[], bytes | list[bytes]], deadline: float, progress: Callable[[], None]
    ) -> bool:
        """Write the small frame ``make()`` returns if the socket can take it before
        ``deadline`` (``time.monotonic()``); the caller holds the lock.

        False, and nothing written, when the socket did not become writable in time (the
        peer does not read), or when the write failed (the reader then ends the
        connection). On a plain socket the frame is first offered without waiting; if only
        part of it fits and the rest cannot follow in time, the socket is shut down (a
        partial frame must not be followed by anything).
        """
        assert self.lock.locked()
        sock = self.sock
        try:
            if self.plain and _DONTWAIT:
                # Without waiting first: a socket with room for the frame (the usual
                # case) takes it whole, and the poll() system call is saved.
                made = make()
                data = made if isinstance(made, bytes) else b"".join(made)
                try:
                    sent = sock.send(data, _DONTWAIT)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    progress()
                    return True
                if sent and not wait_writable(sock, max(0.0, deadline - time.monotonic())):
                    # Part of a frame is out and the rest cannot follow in time: the
                    # stream is broken; shut it down so that nothing is written after it.
                    sock.shutdown(socket.SHUT_RDWR)
                    return False
                if not sent and not wait_writable(sock, max(0.0, deadline - time.monotonic())):
                    return False
                sock.sendall(data[sent:])
                progress()
                return True
            if not wait_writable(sock, max(0.0, deadline - time.monotonic())):
                return False
            made = make()
            if isinstance(made, bytes):
                sock.sendall(made)
            else:
                for chunk in made:
                    sock.sendall(chunk)
            progress()
            return True
        except (OSError, ValueError):
            return False
        except BaseException:
            # Interrupted (Ctrl-C, a signal handler's exception) possibly part-way
            # through the frame: nothing may follow it on the wire.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
            raise
