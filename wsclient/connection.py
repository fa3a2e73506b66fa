"""``WebSocketConnection``: the public surface of an open WebSocket and its thread wiring.

The parts live elsewhere: :mod:`wsclient.protocol` owns every protocol and closing state,
:mod:`wsclient._readpath` is the one place that reads the socket, :mod:`wsclient.inbox` is
the bounded message queue, :mod:`wsclient._writer` owns the send lock and the writes,
:mod:`wsclient._direct` lets a consumer read the socket itself, :mod:`wsclient._keepalive`
pings, :mod:`wsclient._fork` detaches a fork child. This module wires them to one reader
thread, the shared timer thread (:mod:`wsclient._timer`: close timeouts, keepalive) and the
callers' threads.

Every wait has a bound (see docs/threads.md): writes that only the application makes wait
for the send lock until the connection ends, writes the library makes by itself (pongs, the
close echo, a failure's close frame, keepalive pings) wait at most ``close_timeout`` (the
timer thread: not at all), and a write that cannot progress is ended by shutting the socket
down (``drop()``, keepalive, or ``close()`` after ``close_timeout``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from threading import get_ident
from typing import TYPE_CHECKING, Any

from . import _direct, _fork, _timer
from ._direct import READ_SOMETHING, Park, can_read_directly, read_direct
from ._keepalive import Keepalive
from ._readpath import ReadPath
from ._writer import WRITE_SLICE as _WRITE_SLICE
from ._writer import Writer
from .events import EventEmitter
from .exceptions import ConnectionClosed, ConnectionClosedError, closed_exception
from .frames import Frame, encode_close_payload, is_valid_close_code
from .inbox import FAILURE, Inbox, InboxClosed
from .protocol import Close, Failure, Ping, Pong, Protocol, State

if TYPE_CHECKING:
    from .config import ClientConfig
    from .handshake import Response

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("wsclient.connection")

# The reader thread starts this long after the opening if nothing needed it earlier, so a
# connection opened and closed at once costs no thread (connect + close: its close then
# runs on the caller's thread).
_LAZY_START = 0.01
# Stamps the last write (keepalive's sign of life): about 40 ns a send, against a ~3 us send.
_monotonic = time.monotonic


def _check_close_args(code: Any, reason: Any) -> None:
    """Raise TypeError/ValueError unless ``code`` and ``reason`` can go in a close frame."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"the close code must be an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"the close reason must be a str, not {type(reason).__name__}")
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 section 7.4)")
    encode_close_payload(code, reason)  # the reason: at most 123 bytes of UTF-8


class WebSocketConnection(EventEmitter):
    """An open WebSocket connection (client side).

    Created by :class:`~wsclient.WebSocketClient` (and so by :func:`wsclient.connect`); not
    meant to be instantiated directly. Use it as a context manager to close it on exit.

    Events (see :meth:`on`): ``message(data)``, ``frame(frame)``, ``ping(data, cancel)``,
    ``pong(data)``, ``close(code, reason)``, ``error(exception)``. They run on the reader
    thread; a listener that raises is reported on ``error``.
    """

    EVENTS = frozenset({"message", "frame", "ping", "pong", "close", "error"})
    # Slots: a connection has over 30 attributes, past the size at which CPython 3.11 shares
    # an instance dict's keys between instances, so each connection paid about 1.6 KiB for
    # its own dict (1,000 connections: benchmarks/ scale-1000). __weakref__: _fork tracks it.
    __slots__ = (
        "__weakref__", "_aborted", "_alive_at", "_close_lock", "_close_timer", "_config", "_direct", "_finished",
        "_inbox", "_inherited", "_keepalive", "_message_listeners", "_opened", "_park",
        "_proto_lock", "_protocol", "_read_lock", "_reader", "_reader_ident", "_reader_state", "_readpath",
        "_send_lock", "_sock", "_start_lock", "_timers", "_writer", "close_code", "close_reason",
        "extensions", "remote_address", "response", "subprotocol", "web_socket_version",
    )

    def __init__(
        self,
        sock: Any,
        protocol: Protocol,
        *,
        config: ClientConfig,
        response: Response,
        subprotocol: str | None,
        extensions: list[tuple[str, dict[str, Any]]],
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

        # Guards the protocol's closing state: held around receive_data and every closing
        # call (send_close, fail, data_to_send), never across I/O.
        self._proto_lock = threading.Lock()
        # One reader of the socket at a time (the read path): the reader thread, a
        # consumer reading directly, or a close on the caller's thread; held across recv.
        self._read_lock = threading.Lock()
        # Serialises close() calls: a second one waits for the first.
        self._close_lock = threading.Lock()
        # Guards _reader_state (starting the reader thread, or claiming its work instead).
        self._start_lock = threading.Lock()
        # The reader thread waits on it (its own lock) while a consumer reads directly.
        self._park = Park()

        self._inbox = Inbox(config.max_queue)
        self._readpath = ReadPath(sock, protocol, self._proto_lock, self._inbox)
        self._writer = Writer(sock, self._readpath.plain)
        # The writer's send lock (serialises writes; held across sendall), cached here for
        # send()'s fast path, which writes inline with it and self._sock.
        self._send_lock = self._writer.lock
        self._direct = _direct.DIRECT_READS and self._readpath.plain
        self._message_listeners: list[Any] = []
        self._reader_state = 0  # 0: not started, 1: started, 2: never (closed inline)
        self._opened = False  # _start() was called
        self._aborted = False  # the socket was shut down (drop, keepalive, close fallback)
        self._finished = False  # the connection ended; close_code is set
        self._inherited = False  # this process is a fork child of the connection's owner
        self._timers: list[_timer.Timer] = []
        self._close_timer: _timer.Timer | None = None
        # Keepalive (timer thread): when the peer last showed life (a write of ours
        # completed, or a pong arrived); a plain float store, no lock needed.
        self._alive_at = 0.0
        self._keepalive: Keepalive | None = None  # made when the reader starts if ping_interval is set
        # Made when started (under _start_lock): a connection closed before it needed one
        # never builds it (about 10 us and 1.5 KiB: connect + close, storm-1000).
        self._reader: threading.Thread | None = None
        self._reader_ident: int | None = None  # set by the reader thread itself when it runs
        _fork.track(self)

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        """Called by the client once the ``connect`` listeners ran.

        The reader thread starts on first use (``recv()``, a listener, ``pause()``) or
        ``_LAZY_START`` seconds after the opening, whichever comes first, so that a
        connection that is opened and closed at once costs no thread.
        """
        self._opened = True
        self._alive_at = time.monotonic()
        if self._message_listeners or self._listeners:
            self._ensure_reader()
        else:
            self._schedule(_LAZY_START, self._ensure_reader)
        with self._start_lock:
            if self._reader_state == 1:  # started by a connect listener, or just now
                self._arm_keepalive()

    def _arm_keepalive(self) -> None:
        """Start keepalive (if ``ping_interval`` is set) once the reader thread runs: a
        connection closed before its reader started never needs it, and connect + close
        then costs no keepalive timer. The first ping is due ``ping_interval`` after the
        opening (or after the last write, if one came since). Caller holds ``_start_lock``."""
        assert self._start_lock.locked()
        interval = self._config.ping_interval
        if interval is None or self._keepalive is not None:
            return
        first = self._alive_at + interval
        self._keepalive = Keepalive(self, first)
        self._schedule(max(0.0, first - time.monotonic()), self._keepalive)

    def _ensure_reader(self, force: bool = False) -> None:
        """Start the reader thread unless it runs already or its work was claimed.

        Before the client's ``connect`` listeners are done, only ``force`` starts it, so
        that a listener can register handlers and ``pause()`` before anything is read.
        """
        if self._reader_state or not (self._opened or force):
            return
        with self._start_lock:
            if self._reader_state == 0:
                try:
                    self._reader_state = 1
                    reader = threading.Thread(target=self._run, name=f"wsclient-reader-{id(self):x}", daemon=True)
                    self._reader = reader
                    reader.start()
                except BaseException:
                    # Interrupted (Ctrl-C in the main thread lands inside Thread.start()),
                    # or no thread could be made: as if the reader never started, so that
                    # close() and drop() finish on the caller's thread. A thread that was
                    # launched all the same finds itself disowned in _run and ends.
                    self._reader = None
                    self._reader_state = 0
                    raise
                if self._opened:
                    self._arm_keepalive()

    def _claim_inline_close(self) -> bool:
        """True if the reader thread never started and now never will: the caller then
        closes on its own thread (plain TCP only: it waits with poll(), which sees no
        bytes buffered inside a TLS layer). False means the reader can be joined."""
        with self._start_lock:
            if self._reader_state == 0 and self._readpath.plain:
                self._reader_state = 2
                return True
        self._ensure_reader(force=True)
        return False

    def _join_reader(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the reader thread (unless this is it or it never ran)."""
        if threading.current_thread() is self._reader or self._inherited:
            return
        with self._start_lock:  # a start in progress completes first
            reader = self._reader
        if reader is not None:
            reader.join(timeout)

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
        return not self._finished and not self._aborted and self._protocol.state is State.OPEN

    def _listeners_changed(self, event: str) -> None:
        if event == "message":
            self._message_listeners = self.listeners("message")
        self._park.unpark()  # listeners run on the reader thread: it takes the socket back
        self._ensure_reader()

    # ------------------------------------------------------------------ sending

    def _lock_send(self, timeout: float | None) -> bool:
        """Take the send lock within ``timeout`` (None: until the connection ends).

        Returns False when it could not. Without a timeout, raises the closed exception
        once the connection is aborted or finished: the holder's write is then being
        ended by the shutdown, and nobody waits on a dead connection.
        """
        if self._writer.acquire(timeout, self._ended):
            return True
        if timeout is None:
            raise self._closed_error()
        return False

    def _ended(self) -> bool:
        return self._aborted or self._finished

    def _progress(self) -> None:
        self._alive_at = _monotonic()

    def _write(self, data: bytes | Iterable[bytes]) -> None:
        """Write ``data`` under the send lock (see :meth:`Writer.write`)."""
        try:
            self._writer.write(data, self._progress)
        except OSError as exc:
            raise self._send_failed(exc) from exc
        except BaseException:
            self._write_interrupted()
            raise

    def _write_interrupted(self) -> None:
        """An exception other than ``OSError`` ended a write part-way: ``KeyboardInterrupt``,
        or a signal handler's exception (a worker's time limit, ``alarm()``) raised while
        the write waited on a peer that does not read. The peer may hold part of a frame,
        and nothing may follow it on the wire: the connection fails with 1006 (never sent),
        as by ``drop()``."""
        logger.debug("a write was interrupted part-way: failing the connection")
        self._abort(1006, "")

    def _send_failed(self, exc: OSError) -> ConnectionClosed:
        """A write failed: the connection is lost (or was shut down); the reader ends it."""
        self._abort_socket()
        if self.close_code is not None:
            return closed_exception(self.close_code, self.close_reason or "")
        code, reason = self._protocol.close_status((1006, ""))
        if code in (1000, 1001):
            return closed_exception(code, reason)
        return ConnectionClosedError(code, reason, f"connection closed while sending (code {code}): {exc}")

    def _closed_error(self) -> ConnectionClosed:
        """The exception for an operation on a closed (or closing) connection."""
        if self.close_code is not None:
            return closed_exception(self.close_code, self.close_reason or "")
        proto = self._protocol
        return closed_exception(*proto.close_status(proto.close_sent or (1006, "")))

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a message: text for ``str``, binary for bytes-like.

        Fragmented past ``fragmentation_threshold`` when ``fragment_outgoing_messages``.
        Blocks while the peer does not read; keepalive, ``close()`` or ``drop()`` end
        such a wait with ``ConnectionClosed``.

        Raises:
            ConnectionClosed: the close frame was already sent or received.
            TypeError: ``data`` is neither str nor bytes-like.
        """
        t = type(data)
        if t is not str and t is not bytes and not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"send() takes str or bytes-like data, not {type(data).__name__}")
        lock = self._send_lock
        if not lock.acquire(False):  # positional: a keyword costs ~0.2 us here
            self._lock_send(None)
        try:
            proto = self._protocol
            if proto.close_sent is not None or self._finished or self._aborted:
                raise self._closed_error()
            frames = proto.encode_message_stream(data)
            if type(frames) is bytes and len(frames) <= _WRITE_SLICE:
                try:
                    self._sock.sendall(frames)
                except OSError as exc:
                    raise self._send_failed(exc) from exc
                except BaseException:
                    self._write_interrupted()
                    raise
                self._alive_at = _monotonic()
            else:
                self._write(frames)
        finally:
            lock.release()

    def send_many(self, messages: Iterable[str | bytes | bytearray | memoryview]) -> None:
        """Send several messages, in order, with as few writes as possible.

        Each item is one message, as :meth:`send` would send it (text for ``str``, binary
        for bytes-like). The whole batch is written under the send lock: no other thread's
        message lands between two of its messages. Flushing rule: consecutive small frames
        are joined into one write as they are encoded, and the buffer is written whenever
        it reaches 256 KiB, before a fragmented message, and at the end — every message is
        written (handed to the kernel) when ``send_many`` returns.

        Publishing 100 small messages this way costs one system call instead of 100.

        Raises:
            TypeError: an item is neither str nor bytes-like (checked before anything is
                sent: then nothing of the batch is sent).
            ConnectionClosed: as :meth:`send`; messages before the failing write may have
                been sent.
        """
        batch = list(messages)
        for item in batch:
            if not isinstance(item, (str, bytes, bytearray, memoryview)):
                raise TypeError(f"send_many() takes str or bytes-like items, not {type(item).__name__}")
        if not batch:
            return
        lock = self._send_lock
        if not lock.acquire(False):  # positional: a keyword costs ~0.2 us here
            self._lock_send(None)
        try:
            proto = self._protocol
            if proto.close_sent is not None or self._finished or self._aborted:
                raise self._closed_error()
            try:
                self._writer.write_batch(map(proto.encode_message_stream, batch), self._progress)
            except OSError as exc:
                raise self._send_failed(exc) from exc
            except BaseException:
                self._write_interrupted()
                raise
        finally:
            lock.release()

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
        self._lock_send(None)
        try:
            proto = self._protocol
            if proto.close_sent is not None or self._finished or self._aborted:
                raise self._closed_error()
            with self._proto_lock:  # a close frame sets the protocol's closing state
                data = proto.encode_frame(frame)
            self._write(data)
        finally:
            self._send_lock.release()

    def _send_control(self, make: Callable[[], bytes]) -> None:
        self._lock_send(None)
        try:
            if self._protocol.close_sent is not None or self._finished or self._aborted:
                raise self._closed_error()
            self._write(make())
        finally:
            self._send_lock.release()

    def ping(self, data: bytes | str = b"") -> None:
        """Send a ping (payload at most 125 bytes, ``ValueError`` past that)."""
        self._protocol.encode_ping(data)  # type: ignore[arg-type]  # validates before waiting
        self._send_control(lambda: self._protocol.encode_ping(data))  # type: ignore[arg-type]

    def pong(self, data: bytes | str = b"") -> None:
        """Send an unsolicited pong (payload at most 125 bytes)."""
        self._protocol.encode_pong(data)  # type: ignore[arg-type]
        self._send_control(lambda: self._protocol.encode_pong(data))  # type: ignore[arg-type]

    def _write_control(self, make: Callable[[], bytes], timeout: float) -> bool:
        """Write one frame the library makes by itself (pong, keepalive ping) within
        ``timeout``; False, and nothing written, when the lock or the socket's buffer did
        not free up in time (the peer does not read)."""
        deadline = time.monotonic() + timeout
        if not self._lock_send(timeout):
            return False
        try:
            if self._protocol.close_sent is not None or self._finished or self._aborted:
                return False
            return self._writer.write_bounded(make, deadline, self._progress)
        finally:
            self._send_lock.release()

    def _flush_close(self, timeout: float) -> bool:
        """Write the close frame the protocol queued (ours, an echo, a failure's) within
        ``timeout``. True when written or when there was none; False when it could not
        be written in time (the caller then shuts the socket down)."""
        proto = self._protocol
        if not proto.has_output:
            return True
        deadline = time.monotonic() + timeout
        if not self._lock_send(timeout):
            return False
        try:
            with self._proto_lock:
                data = proto.data_to_send()
            if not data:
                return True
            if self._finished:
                return False
            return self._writer.write_bounded(lambda: data, deadline, self._progress)
        finally:
            self._send_lock.release()
            if proto.close_received is not None and proto.close_sent is not None:
                self._inbox.close()  # both close frames crossed: recv() can raise now

    # ------------------------------------------------------------------ receiving

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next whole message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: seconds to wait; None waits for ever; 0 returns a message that has
                already arrived (queued, or in the socket) or raises at once.

        Raises:
            TimeoutError: nothing arrived within ``timeout``.
            ConnectionClosed: the connection is closed and every queued message was read
                (``ConnectionClosedOK`` for 1000/1001, ``ConnectionClosedError`` otherwise).
            RuntimeError: called from a listener with nothing queued (the reader thread
                cannot wait for itself).
        """
        if self._inbox.queue:
            msg = self._inbox.get_nowait()
            if msg is not None and msg is not FAILURE:
                return msg  # type: ignore[no-any-return]
            return self._recv_wait(timeout, msg is FAILURE)
        return self._recv_wait(timeout, False)

    def _recv_wait(self, timeout: float | None, failed: bool) -> str | bytes:
        if failed:
            self._failure_reached()
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
        if get_ident() == self._reader_ident:
            raise RuntimeError("recv() cannot wait on the reader thread (it was called from a listener)")
        if not self._reader_state:
            self._ensure_reader(force=True)
        inbox = self._inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if can_read_directly(self) and self._read_lock.acquire(False):
                try:
                    # The reader thread queues what it reads under the read lock: a message
                    # it queued after the look above, before this thread took the lock, is
                    # taken first (a read here would wait for bytes that may never come).
                    got = inbox.get_nowait() if inbox.queue else None
                    if got is None:
                        got = read_direct(self, left)
                finally:
                    self._read_lock.release()
                if got is not None:
                    if got is READ_SOMETHING:
                        continue
                    if got is FAILURE:
                        self._failure_reached()
                        continue
                    return got  # type: ignore[no-any-return]
                if left is not None and deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"no message within {timeout} seconds")
            msg = inbox.get_nowait()
            if msg is FAILURE:
                self._failure_reached()
                continue
            if msg is not None:
                return msg  # type: ignore[no-any-return]
            if inbox.closed:
                raise self._closed_error()
            self._park.unpark()  # this consumer waits for the reader thread: it must read
            try:
                msg = inbox.get(left)
            except InboxClosed:
                raise self._closed_error() from None
            if msg is FAILURE:
                self._failure_reached()
                continue
            return msg  # type: ignore[no-any-return]

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

    def pause(self) -> None:
        """Stop reading from the socket (the server sees TCP back-pressure)."""
        self._inbox.pause()
        self._ensure_reader()

    def resume(self) -> None:
        """Restart reading after :meth:`pause`."""
        self._inbox.resume()

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        with self._start_lock:  # the start completed, or was rolled back (_ensure_reader)
            if self._reader is not threading.current_thread():
                return
            self._reader_ident = get_ident()
        proto = self._protocol
        readpath = self._readpath
        park = self._park
        error: BaseException | None = None
        try:
            while not proto.eof:
                self._inbox.wait_resumed()
                if park.until:
                    park.wait_parked(self)
                with self._read_lock:
                    if proto.eof:
                        break
                    events = readpath.read(whole=True)
                    stepping_aside = bool(
                        events and self._direct and self._inbox.has_getters and not self._listeners
                    )
                    if stepping_aside:
                        # A consumer waits in recv(): once served it reads the next
                        # messages itself, so step aside (see wsclient._direct). The batch
                        # is queued without waiting for room: this thread reads nothing
                        # more while parked, and a wait here, under the read lock, let the
                        # consumer find the lock taken and call the reader back, so that
                        # direct reads never resumed (recv 100k x 1 KiB text: 1568 batches,
                        # 0 direct reads).
                        park.hold()
                    # Handled under the read lock, so that a consumer reading directly
                    # cannot queue later messages before these.
                    if events:
                        self._handle(events, on_reader=not stepping_aside, bound=self._config.close_timeout)
        except OSError as exc:
            if not self._aborted and proto.close_received is None:
                error = exc
        except Exception as exc:  # a bug: report it, never leave the thread silently
            logger.exception("reader thread failed")
            error = exc
        finally:
            try:
                self._finish(error)
            finally:
                # The OS may give this thread's ident to a new thread once it ends: that
                # thread is not the reader (recv() there must not raise RuntimeError).
                self._reader_ident = None

    def _handle(self, events: list[Any], *, on_reader: bool, bound: float) -> None:
        """Dispatch events in order, so that a listener sees the messages that came
        before a close or a failure before the answering close frame goes out."""
        listeners = self._message_listeners
        if not listeners and all(type(e) is str or type(e) is bytes for e in events):
            self._inbox.put(events, wait=on_reader)  # the hot path: a batch of messages
            return
        for ev in events:
            t = type(ev)
            if t is str or t is bytes:
                if listeners:
                    self._emit("message", ev)
                else:
                    self._inbox.put([ev], wait=on_reader)
            elif t is Frame:
                self._emit("frame", ev)
            elif t is Ping:
                self._on_ping(ev.data, bound)
            elif t is Pong:
                self._alive_at = _monotonic()
                if self._keepalive is not None:
                    self._keepalive.pong(ev.data)
                self._emit("pong", ev.data)
            elif t is Close:
                logger.debug("peer closed: %s %r", ev.code, ev.reason)
                # Known now (recv() may raise before the TCP close ends the connection).
                self.close_code, self.close_reason = self._protocol.close_status((ev.code, ev.reason))
                self._inbox.release()
                self._park.unpark()
                if not self._flush_close(bound):
                    self._abort_socket()
                if self._protocol.close_sent is not None:
                    self._inbox.close()  # both close frames crossed: recv() can raise now
                self._arm_close_timer()  # for the TCP close, even if no echo was due
            elif t is Failure:
                logger.debug("protocol failure: %s", ev.error)
                self._inbox.release()  # nothing more is queued: the protocol drops input
                self._park.unpark()
                self._emit("error", ev.error)
                if self._message_listeners or not len(self._inbox):
                    self._failure_reached()
                else:
                    # The consumer has not caught up with the messages that came before
                    # the error: the close frame goes out when it reaches this point in
                    # the queue (or after close_timeout), so its answers are not cut off.
                    self._inbox.put_failure()
                    self._close_timer = self._schedule(self._config.close_timeout, self._deferred_close)
            listeners = self._message_listeners

    def _on_ping(self, data: bytes, bound: float) -> None:
        cancelled = False

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True

        self._emit("ping", data, cancel)
        if not cancelled and not self._write_control(lambda: self._protocol.encode_pong(data), bound):
            logger.debug("pong not written within %s s: the peer does not read", bound)

    def _failure_reached(self) -> None:
        """The consumer reached a failure (or nothing was queued before it): send the
        failure's close frame now and wait for the peer's answer within close_timeout."""
        _timer.cancel(self._close_timer)
        self._close_timer = None
        if not self._flush_close(self._config.close_timeout):
            self._abort_socket()
        self._arm_close_timer()

    def _deferred_close(self) -> None:
        """Timer thread: the consumer did not reach a failure in time; send the close now
        if it can be written without waiting."""
        self._close_timer = None
        if not self._flush_close(0):
            self._abort_socket()
        self._arm_close_timer()

    def _finish(self, error: BaseException | None) -> None:
        """The reader (or a close on the caller's thread) ends the connection."""
        proto = self._protocol
        if proto.has_output and not self._aborted:
            # A failure's close frame still waits for the consumer, but the peer closed
            # its side: send it now, while the socket can still carry it.
            self._flush_close(self._config.close_timeout)
        with self._proto_lock:
            proto.receive_eof()
        code, reason = proto.close_status((1006, ""))
        self.close_code = code
        self.close_reason = reason
        self._finished = True
        self._inbox.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._park.unpark()
        # Shut down first: a sender blocked in sendall wakes with an error; then close
        # once it has left (it releases the send lock at once).
        self._abort_socket()
        locked = self._send_lock.acquire(timeout=1.0)
        try:
            self._sock.close()
        except OSError:
            pass
        finally:
            if locked:
                self._send_lock.release()
        if error is not None:
            self._emit("error", error)
        self._emit("close", code, reason)
        logger.debug("connection closed: %s %r", code, reason)

    # ------------------------------------------------------------------ closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake.

        Sends a close frame, then waits until the peer answers and closes the TCP
        connection, or until ``close_timeout`` runs out (then the socket is shut down, as
        by :meth:`drop`, and blocked senders raise ``ConnectionClosed``). A call while
        another close is in progress waits for it; a call after the close does nothing.
        From a listener (on the reader thread) it sends the close frame and returns
        without waiting.

        Raises:
            ValueError: ``code`` cannot be sent (see RFC 6455 section 7.4) or the reason is
                longer than 123 bytes of UTF-8.
        """
        _check_close_args(code, reason)
        timeout = self._config.close_timeout
        if self._inherited:
            return
        if threading.current_thread() is self._reader:
            if not self._start_close(code, reason, timeout):
                self._abort_socket()
            self._arm_close_timer()
            return
        deadline = time.monotonic() + timeout
        if not self._close_lock.acquire(timeout=timeout + 1.0):
            return  # another close() is in progress and bounded by the same timeout
        try:
            if self._finished:
                self._join_reader(timeout)  # the reader may still be emitting "close"
                return
            if self._claim_inline_close():
                self._close_inline(code, reason, deadline)
                return
            if not self._start_close(code, reason, timeout):
                logger.debug("close frame not written within close_timeout: dropping")
                self._abort_socket()
            self._join_reader(max(0.0, deadline - time.monotonic()))
            if not self._finished:
                logger.debug("no close from the peer within close_timeout: closing the socket")
                self._abort_socket()
                self._join_reader(1.0)
        finally:
            self._close_lock.release()

    def _start_close(self, code: int, reason: str, timeout: float) -> bool:
        """Queue our close frame and write it within ``timeout`` (False: it was not)."""
        with self._proto_lock:
            self._protocol.send_close(code, reason)
        self._inbox.release()  # a reader blocked on a full queue or paused must read the answer
        self._park.unpark()
        return self._flush_close(timeout)

    def _close_inline(self, code: int, reason: str, deadline: float) -> None:
        """The closing handshake on the caller's thread, for a connection whose reader
        thread never started (nothing else reads the socket)."""
        proto = self._protocol
        error: BaseException | None = None
        try:
            if self._start_close(code, reason, max(0.0, deadline - time.monotonic())):
                while not proto.eof:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    with self._read_lock:
                        events = self._readpath.read(left)
                    if events is None:
                        break
                    if events:
                        self._handle(events, on_reader=False, bound=max(0.0, left))
        except OSError as exc:
            if proto.close_received is None:
                error = exc
        except BaseException:
            # Interrupted (Ctrl-C, a signal handler's exception): the connection ends
            # here all the same, without its closing handshake.
            self._readpath.interrupted()
            self._finish(ConnectionAbortedError("the closing handshake was interrupted"))
            raise
        self._finish(error)

    def _arm_close_timer(self) -> None:
        # A close on the caller's thread (reader state 2) keeps its own deadline.
        if self._close_timer is None and not self._finished and self._reader_state != 2:
            self._close_timer = self._schedule(self._config.close_timeout, self._abort_socket)

    def _schedule(self, delay: float, callback: Callable[[], None]) -> _timer.Timer:
        """Schedule a timer of this connection; never outlives the connection.

        The timer is stored before ``_finished`` is read again here, and ``_finish`` sets
        ``_finished`` before it cancels the stored timers, so one of the two cancels it.
        """
        timer = _timer.schedule(delay, callback)
        timers = self._timers
        if len(timers) > 8:  # keepalive adds one a round: forget the ones that are over
            now = time.monotonic()
            timers[:] = [t for t in timers if not t.cancelled and t.when > now]
        timers.append(timer)
        if self._finished:
            timer.cancel()
        return timer

    def drop(self, code: int = 1006, reason: str = "") -> None:
        """Close at once, without the closing handshake.

        A close frame is sent first (best effort: only if it can be written without
        waiting) unless ``code`` is 1005 or 1006, which never go on the wire;
        ``close_code`` becomes ``code``.

        Raises:
            ValueError: any other code that may not be sent (RFC 6455 section 7.4), or a
                reason longer than 123 bytes of UTF-8.
        """
        if code not in (1005, 1006):
            _check_close_args(code, reason)
        if self._inherited:
            return
        if self._finished:
            self._join_reader(self._config.close_timeout)
            return
        self._abort(code, reason)
        with self._start_lock:
            inline = self._reader_state == 0
            if inline:
                self._reader_state = 2
        if inline:
            self._finish(None)
            return
        self._join_reader(self._config.close_timeout)

    def _abort(self, code: int, reason: str) -> None:
        """Fail the connection with ``code`` without waiting for anything (any thread,
        the timer thread included): best-effort close frame, socket shut down."""
        self._aborted = True
        with self._proto_lock:
            self._protocol.fail(code, reason)
        self._flush_close(0)
        self._abort_socket()
        self._inbox.release()
        self._park.unpark()

    def _abort_socket(self) -> None:
        """Shut the socket down: blocked reads and writes on it end at once."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ fork

    def _inherited_by_child(self) -> None:
        """In a fork child: this connection belongs to the parent. Make every call raise
        ``ConnectionClosed`` and let go of the child's copy of the descriptor, without
        touching the connection itself (no shutdown, no close frame)."""
        self._inherited = True
        self._finished = True
        self._aborted = True
        # A lock held by a parent thread at the fork stays held in the child: fresh ones.
        self._send_lock = self._writer.lock = threading.Lock()
        self._proto_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._park = Park()
        self._inbox = Inbox(self._config.max_queue)
        self._inbox.close()
        self._reader_state = 2
        self._reader_ident = None
        self._timers = []
        self._close_timer = None
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "connection inherited from the parent process"
        try:
            _fork.raw_socket(self._sock).close()  # the child's descriptor only
        except OSError:
            pass
