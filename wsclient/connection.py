"""``WebSocketConnection``: an open WebSocket, its reader thread, sends, and the close.

This is the only module that owns threads (with :mod:`wsclient._timer`). The reader thread
reads the socket, feeds :class:`~wsclient.protocol.Protocol`, writes what the protocol
answers by itself (close echo, close after a failure) and dispatches events. Sends from any
thread go through one send lock, so the frames of one message never interleave with
another's.

Reading the socket and feeding the protocol happen under ``_rlock``. On a plain socket a
consumer waiting in ``recv()`` takes it and reads directly while the reader thread parks
(``_PARK``), which saves a thread hand-off per message; anything but plain messages is handed
back to the reader thread (``_pending``), so listeners only ever run there. The reader never
parks while a consumer waits for it.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import _timer
from .events import EventEmitter
from .exceptions import ConnectionClosed, ConnectionClosedError, closed_exception
from .frames import Frame, encode_close_payload, is_valid_close_code
from .protocol import Close, Failure, Ping, Pong, Protocol, State

if TYPE_CHECKING:
    from .config import ClientConfig
    from .handshake import Response

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("wsclient.connection")

_RECV_SIZE = 1 << 16
_WRITE_BATCH = 1 << 18
_IOV_BATCH = 64  # pieces per sendmsg() call (well under IOV_MAX)
# After a short read the next one asks for this much: an idle connection blocked in recv()
# then holds a small buffer instead of 64 KiB.
_SMALL_RECV_SIZE = 1 << 10
# While the application is receiving, the reader thread leaves the socket to it for this
# long (see recv()): pings and the peer's close are then handled at most this late when
# nobody is in recv().
_PARK = 0.05
# The reader thread starts this long after the opening if nothing needed it earlier.
_LAZY_START = 0.01
# Queued after the messages that preceded a protocol failure (see _handle).
_FAIL_MARK: Any = object()
_BIG_RECV_SIZE = 1 << 22


def _sendmsg_all(sock: socket.socket, pieces: list[bytes]) -> None:
    """Write every piece, in order, with as few ``sendmsg`` calls as the kernel allows."""
    views = [memoryview(p) for p in pieces]
    i = 0
    count = len(views)
    while i < count:
        sent = sock.sendmsg(views[i : i + _IOV_BATCH])
        while sent:
            size = len(views[i])
            if sent >= size:
                sent -= size
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0


def _check_close_args(code: Any, reason: Any) -> None:
    """Raise TypeError/ValueError unless ``code`` and ``reason`` can go in a close frame."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"the close code must be an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"the close reason must be a str, not {type(reason).__name__}")
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 section 7.4)")
    encode_close_payload(code, reason)  # the reason: at most 123 bytes of UTF-8


def _readable(sock: Any, timeout: float) -> bool:
    """Wait until ``sock`` is readable (poll, so that any file descriptor number works)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(1, int(timeout * 1000 + 0.999))))
    return bool(select.select([sock], [], [], timeout)[0])


class WebSocketConnection(EventEmitter):
    """An open WebSocket connection (client side).

    Created by :class:`~wsclient.WebSocketClient` (and so by :func:`wsclient.connect`); not
    meant to be instantiated directly. Use it as a context manager to close it on exit.

    Events (see :meth:`on`): ``message(data)``, ``frame(frame)``, ``ping(data, cancel)``,
    ``pong(data)``, ``close(code, reason)``, ``error(exception)``. They run on the reader
    thread; a listener that raises is reported on ``error``.
    """

    EVENTS = frozenset({"message", "frame", "ping", "pong", "close", "error"})

    def __init__(
        self,
        sock: Any,
        protocol: Protocol,
        *,
        config: ClientConfig,
        response: Response,
        subprotocol: str | None,
        extensions: list[tuple[str, dict[str, Any]]],
        trailing_data: bytes = b"",
    ) -> None:
        super().__init__()
        self._sock = sock
        self._protocol = protocol
        self._config = config
        self.response = response
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.web_socket_version = config.web_socket_version
        try:
            peer = sock.getpeername()
            self.remote_address: tuple[str, int] | None = (peer[0], peer[1])
        except (OSError, AttributeError):
            self.remote_address = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._trailing = trailing_data

        self._send_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._queue: deque[str | bytes] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = False  # a consumer waits in recv()
        self._reader_blocked = False  # the reader waits for queue space
        self._max_queue = config.max_queue
        self._closing = False  # close()/drop() called or the peer closed: no back-pressure
        self._finished = False  # the reader ended; close_code is set
        self._paused = False  # pause() called: the reader waits on _cond
        self._message_listeners: list[Any] = []
        self._drop: tuple[int, str] | None = None
        self._close_timer: _timer.Timer | None = None
        self._ping_deadline_timer: _timer.Timer | None = None
        self._keepalive_payload: bytes | None = None
        self._timers: list[_timer.Timer] = []
        self._can_dontwait = isinstance(sock, socket.socket) and not hasattr(sock, "cipher")
        # Reading the socket and feeding the protocol happen under _rlock: normally on the
        # reader thread, but on a plain socket a consumer waiting in recv() reads directly,
        # which saves a thread hand-off per message (see recv()).
        self._rlock = threading.Lock()
        self._direct = type(sock) is socket.socket
        self._park_until = 0.0
        self._pending: list[list[Any]] = []  # batches read by a consumer, for the reader
        self._recv_size = _SMALL_RECV_SIZE
        self._after_big = False
        self._start_lock = threading.Lock()
        self._reader_state = 0  # 0: not started, 1: started, 2: never (closed inline)
        self._opened = False  # _start() was called
        self._reader = threading.Thread(
            target=self._run, name=f"wsclient-reader-{id(self):x}", daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        """Called by the client once the ``connect`` listeners ran.

        The reader thread starts on first use (``recv()``, a listener, ``pause()``) or
        ``_LAZY_START`` seconds after the opening, whichever comes first, so that a
        connection that is opened and closed at once costs no thread: its close runs on
        the caller's thread.
        """
        self._opened = True
        if self._message_listeners or any(self._listeners.values()):
            self._ensure_reader()
        else:
            self._schedule(_LAZY_START, self._ensure_reader)
        if self._config.ping_interval is not None:
            self._schedule(self._config.ping_interval, self._keepalive)

    def _ensure_reader(self, force: bool = False) -> None:
        """Start the reader thread unless it runs already or the close went inline.

        Before the client's ``connect`` listeners are done, only ``force`` starts it, so
        that a listener can register handlers and ``pause()`` before anything is read.
        """
        if self._reader_state or not (self._opened or force):
            return
        with self._start_lock:
            if self._reader_state == 0:
                self._reader_state = 1
                self._reader.start()

    def __enter__(self) -> WebSocketConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self.connected else f"closed {self.close_code}"
        return f"<WebSocketConnection {self.remote_address} {state}>"

    @property
    def connected(self) -> bool:
        """True while the connection is open (no close frame sent or received)."""
        return not self._finished and self._protocol.state is State.OPEN and self._drop is None

    def _listeners_changed(self, event: str) -> None:
        if event == "message":
            self._message_listeners = self.listeners("message")
        self._ensure_reader()

    # ------------------------------------------------------------------ sending

    def _write(self, data: bytes | list[bytes]) -> None:
        """Write under the send lock (held by the caller)."""
        try:
            if isinstance(data, bytes):
                self._sock.sendall(data)
            elif len(data) == 1:
                self._sock.sendall(data[0])
            elif self._direct:
                # Many pieces (a fragmented message) on a plain socket: scatter-gather
                # writes, no copy into one buffer.
                _sendmsg_all(self._sock, data)
            else:
                # Many pieces on a TLS stream: a few large writes, not one a frame.
                batch: list[bytes] = []
                size = 0
                for chunk in data:
                    batch.append(chunk)
                    size += len(chunk)
                    if size >= _WRITE_BATCH:
                        self._sock.sendall(b"".join(batch))
                        batch = []
                        size = 0
                if batch:
                    self._sock.sendall(b"".join(batch) if len(batch) > 1 else batch[0])
        except OSError as exc:
            raise self._send_failed(exc) from exc

    def _send_failed(self, exc: OSError) -> ConnectionClosedError:
        """A write failed: the connection is lost; the reader ends it."""
        self._abort_socket()
        return ConnectionClosedError(1006, "", f"connection lost while sending: {exc}")

    def _close_status(self, default: tuple[int, str]) -> tuple[int, str]:
        """(code, reason) the connection ends with: the code given to drop(), the code
        of a failure we detected, the peer's close frame, else ``default``."""
        proto = self._protocol
        if self._drop is not None:
            return self._drop
        if proto.failure is not None:
            return proto.failure.code, str(proto.failure)
        return proto.close_received or default

    def _closed_error(self) -> ConnectionClosed:
        """The exception for an operation on a closed (or closing) connection."""
        if self.close_code is None:  # not finished yet: say what is known
            return closed_exception(*self._close_status(self._protocol.close_sent or (1006, "")))
        return closed_exception(self.close_code, self.close_reason or "")

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a message: text for ``str``, binary for bytes-like.

        Fragmented past ``fragmentation_threshold`` when ``fragment_outgoing_messages``.

        Raises:
            ConnectionClosed: the close frame was already sent or received.
            TypeError: ``data`` is neither str nor bytes-like.
        """
        t = type(data)
        if t is not str and t is not bytes and not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes-like data, not {type(data).__name__}")
        with self._send_lock:
            proto = self._protocol
            if proto.close_sent is not None or self._finished:
                raise self._closed_error()
            frames = proto.encode_message(data)
            if type(frames) is bytes:
                try:
                    self._sock.sendall(frames)
                except OSError as exc:
                    raise self._send_failed(exc) from exc
            else:
                self._write(frames)

    def send_text(self, text: str) -> None:
        """Send ``text`` as a text message (``sendUTF`` in WebSocket-Node)."""
        if not isinstance(text, str):
            raise TypeError(f"send_text() takes str, not {type(text).__name__}")
        self.send(text)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as a binary message (``sendBytes`` in WebSocket-Node)."""
        if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes() takes bytes-like data, not {type(data).__name__}")
        self.send(data)

    def send_frame(self, frame: Frame) -> None:
        """Send one frame as given; the caller owns the order of fragmented frames.

        Raises:
            ValueError: a control frame over 125 bytes or without ``fin``.
            ConnectionClosed: the connection is closing or closed.
        """
        if not isinstance(frame, Frame):
            raise TypeError("send_frame() takes a wsclient.Frame")
        with self._send_lock:
            proto = self._protocol
            data = proto.encode_frame(frame)
            if proto.close_sent is not None or self._finished:
                raise self._closed_error()
            if frame.opcode == 8:
                proto.close_sent = (1005, "")
                proto.state = State.CLOSING
            self._write(data)

    def ping(self, data: bytes | str = b"") -> None:
        """Send a ping (payload at most 125 bytes, ``ValueError`` past that)."""
        with self._send_lock:
            frame = self._protocol.encode_ping(data)  # type: ignore[arg-type]
            if self._protocol.close_sent is not None or self._finished:
                raise self._closed_error()
            self._write(frame)

    def pong(self, data: bytes | str = b"") -> None:
        """Send an unsolicited pong (payload at most 125 bytes)."""
        with self._send_lock:
            frame = self._protocol.encode_pong(data)  # type: ignore[arg-type]
            if self._protocol.close_sent is not None or self._finished:
                raise self._closed_error()
            self._write(frame)

    # ------------------------------------------------------------------ receiving

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next whole message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: seconds to wait; None waits for ever.

        Raises:
            TimeoutError: nothing arrived within ``timeout``.
            ConnectionClosed: the connection is closed and every queued message was read
                (``ConnectionClosedOK`` for 1000/1001, ``ConnectionClosedError`` otherwise).
        """
        q = self._queue
        if not self._reader_state:
            self._ensure_reader(force=True)
        if q:
            msg = q.popleft()
            if self._reader_blocked:
                self._wake_reader()
            if msg is not _FAIL_MARK:
                return msg
            self._flush_protocol()
        elif (
            self._direct
            and not self._pending
            and not self._message_listeners
            and not self._closing
            and not self._paused
            and self._rlock.acquire(blocking=False)
        ):
            try:
                got = self._recv_direct(timeout)
            finally:
                self._rlock.release()
            if got is not None:
                return got
        return self._recv_slow(timeout)

    def _recv_direct(self, timeout: float | None) -> str | bytes | None:
        """Read the socket on the caller's thread (``_rlock`` held, the reader parked).

        Returns a message, or None to fall back to waiting for the reader thread: when the
        queue got a message meanwhile, when a read brought anything but plain messages
        (handed to the reader thread, which dispatches events), and at EOF or an error.
        """
        q = self._queue
        sock = self._sock
        proto = self._protocol
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if q or self._closing or self._finished or proto.eof:
                return None
            self._park_until = time.monotonic() + _PARK
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not _readable(sock, left):
                    raise TimeoutError(f"no message within {timeout} seconds")
            try:
                data = self._read_chunk()
            except OSError:
                data = b""
            if not data:  # EOF or error: the reader thread reads it again and finishes
                self._unpark()
                return None
            events = proto.receive_data(data)
            if not events:
                continue
            for e in events:
                if type(e) is not str and type(e) is not bytes:
                    self._pending.append(events)
                    self._unpark()
                    return None
            if len(events) > 1:
                q.extend(events[1:])  # type: ignore[arg-type]  # all str/bytes (checked above)
            return events[0]  # type: ignore[return-value]

    def _unpark(self) -> None:
        self._park_until = 0.0
        with self._cond:
            self._cond.notify_all()

    def _recv_slow(self, timeout: float | None) -> str | bytes:
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
        if threading.current_thread() is self._reader:
            raise RuntimeError("recv() cannot wait on the reader thread (it was called from a listener)")
        q = self._queue
        cond = self._cond
        deadline = None if timeout is None else time.monotonic() + timeout
        proto = self._protocol
        with cond:
            while not q:
                if self._finished or (
                    proto.close_received is not None and proto.close_sent is not None
                ):
                    # Closed, or both close frames exchanged: nothing more can arrive
                    # (the TCP close finishes in the background, within close_timeout).
                    raise self._closed_error()
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._waiting = False
                        raise TimeoutError(f"no message within {timeout} seconds")
                self._waiting = True
                if self._park_until:
                    # This consumer waits for the reader thread: it must not stay parked.
                    self._park_until = 0.0
                    cond.notify_all()
                cond.wait(left)
            self._waiting = False
            msg = q.popleft()
            if self._reader_blocked:
                cond.notify_all()
        if msg is _FAIL_MARK:
            self._flush_protocol()
            return self._recv_slow(timeout)
        return msg

    def _wake_reader(self) -> None:
        if len(self._queue) < self._max_queue:
            with self._cond:
                self._cond.notify_all()

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the connection closes.

        Ends quietly on a 1000/1001 close; raises ``ConnectionClosedError`` otherwise.
        """
        recv = self.recv
        while True:
            try:
                yield recv()
            except ConnectionClosed as exc:
                if exc.code in (1000, 1001):
                    return
                raise

    def _unpause(self) -> None:
        if self._paused:
            with self._cond:
                self._paused = False
                self._cond.notify_all()

    def _wait_unpaused(self) -> None:
        with self._cond:
            while self._paused and not self._closing:
                self._cond.wait()

    def pause(self) -> None:
        """Stop reading from the socket (the server sees TCP back-pressure)."""
        self._paused = True
        self._ensure_reader()

    def resume(self) -> None:
        """Restart reading after :meth:`pause`."""
        self._unpause()

    # ------------------------------------------------------------------ closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake.

        Sends a close frame, then waits until the peer answers and closes the TCP
        connection, or until ``close_timeout`` runs out. A call while another close is in
        progress waits for it; a call after the close does nothing. From a listener (on the
        reader thread) it sends the close frame and returns without waiting.

        Raises:
            ValueError: ``code`` cannot be sent (see RFC 6455 section 7.4) or the reason is
                longer than 123 bytes of UTF-8.
        """
        _check_close_args(code, reason)
        if threading.current_thread() is self._reader:
            self._send_close(code, reason)
            return
        with self._close_lock:
            if self._finished:
                # Closed already (the reader may still be emitting "close"): wait for it.
                self._join_reader()
                return
            if self._claim_inline_close():
                self._close_inline(code, reason)
                return
            # This thread keeps the close_timeout itself (no timer round trip).
            self._send_close(code, reason, arm_timer=False)
            self._reader.join(self._config.close_timeout)
            if self._reader.is_alive():
                logger.debug("no close from the peer within close_timeout: closing the socket")
                self._abort_socket()
                self._reader.join()

    def _claim_inline_close(self) -> bool:
        """True if the reader thread never started (and now never will): the caller then
        closes on its own thread. Taking the lock also waits for a start in progress
        on another thread, so that a False answer means the reader can be joined."""
        with self._start_lock:
            if self._reader_state == 0:
                self._reader_state = 2
                return True
            return False

    def _close_inline(self, code: int, reason: str) -> None:
        """The closing handshake on the caller's thread, for a connection whose reader
        thread never started (nothing else reads the socket)."""
        self._send_close(code, reason, arm_timer=False)
        proto = self._protocol
        sock = self._sock
        deadline = time.monotonic() + self._config.close_timeout
        error: BaseException | None = None
        try:
            if self._trailing:
                data, self._trailing = self._trailing, b""
                events = proto.receive_data(data)
                if events:
                    self._handle(events)
            while not proto.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data = sock.recv(_RECV_SIZE)
                except TimeoutError:
                    break
                if not data:
                    proto.receive_eof()
                    break
                events = proto.receive_data(data)
                if events:
                    self._handle(events)
        except OSError as exc:
            if proto.close_received is None:
                error = exc
        self._finish(error)

    def _send_close(self, code: int | None, reason: str, *, arm_timer: bool = True) -> None:
        self._closing = True
        self._unpause()  # a paused reader must read the answer
        with self._cond:
            self._cond.notify_all()  # a reader blocked on a full queue goes on reading
        with self._send_lock:
            proto = self._protocol
            try:
                if proto._out:  # a close the protocol queued (failure or echo) goes first
                    self._write(proto.data_to_send())
                elif proto.close_sent is None and not self._finished:
                    self._write(proto.encode_close(code, reason))
            except ConnectionClosed:
                return
            if arm_timer:
                self._arm_close_timer()

    def _deferred_close(self) -> None:
        """Timer thread: the consumer did not reach a failure in time; send the close now."""
        self._close_timer = None
        self._flush_protocol()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._finished:
            self._close_timer = self._schedule(self._config.close_timeout, self._abort_socket)

    def _schedule(self, delay: float, callback: Any) -> _timer.Timer:
        """Schedule a timer of this connection; never outlives the connection.

        The timer is stored by the caller before ``_finished`` is read again here, and
        ``_finish`` sets ``_finished`` before it cancels the stored timers, so one of the
        two always cancels it.
        """
        timer = _timer.schedule(delay, callback)
        timers = self._timers
        if len(timers) > 8:  # keepalive adds two a round: forget the ones that are over
            now = time.monotonic()
            timers[:] = [t for t in timers if not t.cancelled and t.when > now]
        timers.append(timer)
        if self._finished:
            timer.cancel()
        return timer

    def drop(self, code: int = 1006, reason: str = "") -> None:
        """Close at once, without the closing handshake.

        A close frame is sent first (best effort) unless ``code`` is 1005 or 1006, which
        never go on the wire; ``close_code`` becomes ``code``.

        Raises:
            ValueError: any other code that may not be sent (RFC 6455 section 7.4), or a
                reason longer than 123 bytes of UTF-8.
        """
        if code not in (1005, 1006):
            _check_close_args(code, reason)
        if self._finished:
            self._join_reader()
            return
        self._closing = True
        self._drop = (code, reason)
        if code not in (1005, 1006) and self._send_lock.acquire(timeout=0.5):
            try:
                proto = self._protocol
                if proto.close_sent is None:
                    self._try_send_now(proto.encode_close(code, reason))
            except (OSError, ValueError, ConnectionClosed):
                pass
            finally:
                self._send_lock.release()
        self._abort_socket()
        self._unpause()
        if self._claim_inline_close():
            self._finish(None)
            return
        self._join_reader()

    def _join_reader(self) -> None:
        """Wait for the reader thread to end (unless this is it, or it never started)."""
        if threading.current_thread() is self._reader:
            return
        with self._start_lock:  # a start in progress completes first
            started = self._reader.ident is not None
        if started:
            self._reader.join()

    def _try_send_now(self, data: bytes) -> bool:
        """Send without blocking where the socket allows it (plain TCP)."""
        try:
            if self._can_dontwait:
                return self._sock.send(data, socket.MSG_DONTWAIT) == len(data)  # type: ignore[no-any-return]
            self._sock.sendall(data)
            return True
        except OSError:
            return False

    def _abort_socket(self) -> None:
        """Unblock the reader: shut the socket down (the reader then ends)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ keepalive

    def _keepalive(self) -> None:
        """Timer thread: send a ping and arm its deadline; reschedule."""
        if self._finished or self._closing:
            return
        interval = self._config.ping_interval
        assert interval is not None
        if self._keepalive_payload is None and self._send_lock.acquire(blocking=False):
            try:
                if self._protocol.close_sent is None:
                    payload = os.urandom(4)
                    # Set before sending: the pong may be handled before send returns.
                    self._keepalive_payload = payload
                    if not self._try_send_now(self._protocol.encode_ping(payload)):
                        self._keepalive_payload = None
                    elif self._config.ping_timeout is not None:
                        self._ping_deadline_timer = self._schedule(
                            self._config.ping_timeout, self._keepalive_expired
                        )
            finally:
                self._send_lock.release()
        if not self._finished:
            self._schedule(interval, self._keepalive)

    def _keepalive_expired(self) -> None:
        if self._keepalive_payload is None or self._finished:
            return
        logger.info("no pong within ping_timeout=%s: failing the connection", self._config.ping_timeout)
        threading.Thread(
            target=self.drop, args=(1011, "keepalive ping timeout"), name="wsclient-drop", daemon=True
        ).start()

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        proto = self._protocol
        error: BaseException | None = None
        try:
            if self._trailing:
                data, self._trailing = self._trailing, b""
                with self._rlock:
                    events = proto.receive_data(data)
                    if events:
                        self._handle(events)
            while not proto.eof:
                if self._paused:
                    self._wait_unpaused()
                if self._pending:
                    with self._rlock:
                        while self._pending:
                            self._handle(self._pending.pop(0))
                    continue
                if self._park_until > time.monotonic() and not self._closing:
                    with self._cond:
                        left = self._park_until - time.monotonic()
                        # Never park while a consumer waits for this thread to read.
                        park = left > 0 and not self._pending and not self._closing and not self._waiting
                        if park:
                            self._cond.wait(left)
                    if park:
                        continue
                with self._rlock:
                    if self._pending:
                        continue
                    self._read_once()
        except OSError as exc:
            if not self._closing and proto.close_received is None:
                error = exc
        except Exception as exc:  # a bug: report it, never leave the thread silently
            logger.exception("reader thread failed")
            error = exc
        finally:
            self._finish(error)

    def _read_chunk(self) -> bytes:
        """One read from the socket, sized for what the protocol expects (``_rlock`` held)."""
        sock = self._sock
        proto = self._protocol
        pending = proto.pending_bytes
        if pending > _RECV_SIZE:
            if self._direct and proto.pending_whole:
                # The rest of a large frame in one read, without Python in between.
                self._after_big = True
                return sock.recv(pending, socket.MSG_WAITALL)  # type: ignore[no-any-return]
            return sock.recv(min(pending, _BIG_RECV_SIZE))  # type: ignore[no-any-return]
        if self._after_big and proto.idle:
            # After a large frame, read only the next header (at most 10 bytes from a
            # server): if another large frame follows, its payload then arrives in one
            # piece that becomes the message without being copied.
            self._after_big = False
            return sock.recv(10)  # type: ignore[no-any-return]
        size = self._recv_size
        data: bytes = sock.recv(size)
        self._recv_size = _RECV_SIZE if len(data) == size else _SMALL_RECV_SIZE
        return data

    def _read_once(self) -> None:
        """One blocking read on the reader thread (``_rlock`` held)."""
        proto = self._protocol
        data = self._read_chunk()
        if not data:
            proto.receive_eof()
            return
        if self._paused:  # paused while blocked in recv: hold the data
            self._wait_unpaused()
        events = proto.receive_data(data)
        if events:
            # Output only comes with a Close or Failure event, and _handle decides
            # when it is written (a failure's close may wait for the consumer).
            self._handle(events)

    def _flush_protocol(self) -> None:
        """Write the close frame the protocol queued by itself, and start close_timeout."""
        with self._send_lock:
            data = self._protocol.data_to_send()
            if data:
                try:
                    self._write(data)
                except ConnectionClosed:
                    return
                self._arm_close_timer()

    def _handle(self, events: list[Any]) -> None:
        # Events are handled in order, so that a listener sees the messages that came
        # before a close or a failure before the answering close frame goes out.
        listeners = self._message_listeners
        if not listeners and all(type(e) is str or type(e) is bytes for e in events):
            self._enqueue(events)  # the hot path: a batch of plain messages
            return
        for ev in events:
            t = type(ev)
            if t is str or t is bytes:
                if listeners:
                    self._emit("message", ev)
                else:
                    self._enqueue([ev])
            elif t is Frame:
                self._emit("frame", ev)
            elif t is Ping:
                self._on_ping(ev.data)
            elif t is Pong:
                if self._keepalive_payload is not None and ev.data == self._keepalive_payload:
                    self._keepalive_payload = None
                    _timer.cancel(self._ping_deadline_timer)
                self._emit("pong", ev.data)
            elif t is Close:
                logger.debug("peer closed: %s %r", ev.code, ev.reason)
                self._closing = True
                if self._drop is None and self._protocol.failure is None:
                    self.close_code, self.close_reason = ev.code, ev.reason
                self._flush_protocol()
                self._arm_close_timer()  # for the TCP close, even if no echo was due
                with self._cond:
                    self._cond.notify_all()  # a waiting recv() can raise now
            elif t is Failure:
                logger.debug("protocol failure: %s", ev.error)
                self._closing = True
                self._emit("error", ev.error)
                if self._message_listeners or (self._waiting and not self._queue):
                    self._flush_protocol()
                else:
                    # The consumer has not caught up with the messages that came before
                    # the error: the close frame goes out when it reaches this point in
                    # the queue (or after close_timeout), so its answers are not cut off.
                    self._enqueue([_FAIL_MARK])
                    self._close_timer = self._schedule(self._config.close_timeout, self._deferred_close)
            listeners = self._message_listeners

    def _on_ping(self, data: bytes) -> None:
        cancelled = False

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True

        self._emit("ping", data, cancel)
        if not cancelled:
            with self._send_lock:
                if self._protocol.close_sent is None and not self._finished:
                    try:
                        self._write(self._protocol.encode_pong(data))
                    except ConnectionClosed:
                        pass

    def _enqueue(self, messages: list[Any]) -> None:
        q = self._queue
        q.extend(messages)
        if self._waiting:
            with self._cond:
                # The waiting consumer is served; while it is active, it reads the next
                # messages itself and this thread stays off the socket.
                self._waiting = False
                if self._direct:
                    self._park_until = time.monotonic() + _PARK
                self._cond.notify()
        if len(q) >= self._max_queue and not self._closing:
            with self._cond:
                while len(q) >= self._max_queue and not self._closing and not self._finished:
                    self._reader_blocked = True
                    self._cond.wait()
                self._reader_blocked = False

    def _finish(self, error: BaseException | None) -> None:
        proto = self._protocol
        code, reason = self._close_status((1006, ""))
        self.close_code = code
        self.close_reason = reason
        proto.state = State.CLOSED
        with self._cond:
            self._finished = True
            self._cond.notify_all()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        try:
            self._sock.close()
        except OSError:
            pass
        if error is not None:
            self._emit("error", error)
        self._emit("close", code, reason)
        logger.debug("connection closed: %s %r", code, reason)
