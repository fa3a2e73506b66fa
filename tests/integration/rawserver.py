"""A scripted raw-socket WebSocket server on loopback, for what no real server sends.

A :class:`RawServer` listens on ``127.0.0.1`` (or ``::1``), accepts one or more
connections, answers the opening handshake itself (with a configurable
``Sec-WebSocket-Accept``, extra headers, bytes glued to the 101 response, or a whole
response of the test's choosing) and then runs a *script* against each connection:
a list of steps, each a callable taking the :class:`RawConnection`. The steps below
send raw bytes or frames, read the client's (masked) frames and check them, wait
for the client's FIN, or close the socket.

Everything runs on one thread per server (named ``rawserver-<port>``), which
:meth:`RawServer.stop` ends. A step that fails records its error; the test calls
:meth:`RawServer.join` to wait for the scripts and re-raise the first error.

Example::

    with RawServer([send_frame(Op.TEXT, b"\\xff"), expect_close(1007), echo_close(),
                    wait_eof()]) as server:
        ...connect to server.url() and check what the client saw...
        server.join()
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

__all__ = [
    "GUID",
    "Op",
    "RawConnection",
    "RawServer",
    "ReceivedFrame",
    "Step",
    "abort",
    "accept_key",
    "build_frame",
    "call",
    "close",
    "close_payload",
    "echo_close",
    "expect_close",
    "expect_frame",
    "finish_within",
    "read_request",
    "send",
    "send_close",
    "send_frame",
    "serve_until_close",
    "signal",
    "sleep",
    "stream_oversized_head",
    "wait",
    "wait_eof",
]

logger = logging.getLogger("tests.rawserver")

T = TypeVar("T")

#: The GUID of RFC 6455 section 1.3.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Largest request head the server reads before it gives up.
MAX_REQUEST_HEAD = 64 * 1024


class Op(IntEnum):
    """Frame opcodes, including reserved ones for malformed-input tests."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    RESERVED_3 = 0x3
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA
    RESERVED_B = 0xB


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value that answers ``key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def close_payload(code: int | None = 1000, reason: str | bytes = "") -> bytes:
    """The payload of a close frame: 2-byte code then the reason (empty when ``code`` is None)."""
    if code is None:
        return b""
    raw = reason.encode("utf-8") if isinstance(reason, str) else reason
    return struct.pack("!H", code) + raw


def build_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bool | bytes = False,
    length: int | None = None,
) -> bytes:
    """Serialize one frame exactly as asked, valid or not.

    Args:
        opcode: any 4-bit value (reserved ones included).
        payload: the payload (``str`` is UTF-8 encoded).
        fin, rsv1, rsv2, rsv3: the header bits.
        mask: ``True`` for a random masking key, 4 bytes for that key, ``False`` for none
            (servers must not mask; a masked server frame is a protocol error).
        length: the payload length written in the header, when it should differ from
            ``len(payload)`` (an oversized header with no payload behind it, say).
    """
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    declared = len(data) if length is None else length
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    first |= (0x10 if rsv3 else 0) | (opcode & 0x0F)
    mask_bit = 0x80 if mask else 0
    if declared < 126:
        head = struct.pack("!BB", first, mask_bit | declared)
    elif declared < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, declared)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, declared)
    if mask:
        key = os.urandom(4) if mask is True else bytes(mask)
        data = _apply_mask(data, key)
        head += key
    return head + data


def _apply_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


@dataclass(frozen=True)
class ReceivedFrame:
    """One frame read from the client, unmasked."""

    opcode: int
    payload: bytes
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    masked: bool

    @property
    def close_code(self) -> int | None:
        """The code of a close frame (1005 when it carried none)."""
        if self.opcode != Op.CLOSE:
            return None
        if len(self.payload) < 2:
            return 1005
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> str:
        """The reason of a close frame."""
        return self.payload[2:].decode("utf-8", "replace") if self.opcode == Op.CLOSE else ""


class ScriptError(AssertionError):
    """A script step's expectation failed."""


class _EOF(Exception):
    """The client closed its side of the TCP connection."""


@dataclass
class RawConnection:
    """One accepted connection, as seen by the script's steps."""

    sock: socket.socket
    address: tuple[object, ...]
    step_timeout: float
    request_head: bytes = b""
    request_line: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    frames: list[ReceivedFrame] = field(default_factory=list)
    eof: bool = False
    notes: list[str] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)

    # -- reading -----------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScriptError("timed out waiting for the client")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError as exc:
            raise ScriptError("timed out waiting for the client") from exc
        except OSError as exc:  # reset by the client
            self.eof = True
            raise _EOF() from exc
        if not chunk:
            self.eof = True
            raise _EOF()
        self._buffer += chunk

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buffer) < n:
            self._fill(deadline)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def read_request(self, timeout: float | None = None) -> None:
        """Read the client's request head (up to the blank line) and parse its headers."""
        deadline = time.monotonic() + (timeout or self.step_timeout)
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_REQUEST_HEAD:
                raise ScriptError("request head too large")
            try:
                self._fill(deadline)
            except _EOF as exc:
                raise ScriptError("client closed before sending its request") from exc
        end = self._buffer.index(b"\r\n\r\n") + 4
        self.request_head = bytes(self._buffer[:end])
        del self._buffer[:end]
        lines = self.request_head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.request_headers = headers

    def read_frame(self, timeout: float | None = None) -> ReceivedFrame | None:
        """Read one frame from the client; ``None`` when the client closed TCP first."""
        deadline = time.monotonic() + (timeout or self.step_timeout)
        try:
            first, second = self._read_exact(2, deadline)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read_exact(2, deadline))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read_exact(8, deadline))
            masked = bool(second & 0x80)
            key = self._read_exact(4, deadline) if masked else b""
            payload = self._read_exact(length, deadline)
        except _EOF:
            return None
        if masked:
            payload = _apply_mask(payload, key)
        frame = ReceivedFrame(
            opcode=first & 0x0F,
            payload=payload,
            fin=bool(first & 0x80),
            rsv1=bool(first & 0x40),
            rsv2=bool(first & 0x20),
            rsv3=bool(first & 0x10),
            masked=masked,
        )
        self.frames.append(frame)
        return frame

    def wait_eof(self, timeout: float | None = None) -> bool:
        """Read and drop bytes until the client closes TCP; False on timeout."""
        deadline = time.monotonic() + (timeout or self.step_timeout)
        while True:
            try:
                self._fill(deadline)
            except _EOF:
                return True
            except ScriptError:
                return False
            self._buffer.clear()

    # -- writing -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send bytes as they are, in one ``sendall``."""
        self.sock.settimeout(self.step_timeout)
        self.sock.sendall(data)

    @property
    def close_frames(self) -> list[ReceivedFrame]:
        """The close frames received so far."""
        return [f for f in self.frames if f.opcode == Op.CLOSE]

    @property
    def close_code(self) -> int | None:
        """The code of the first close frame received, if any."""
        closes = self.close_frames
        return closes[0].close_code if closes else None


#: A script step: a callable run with the connection.
Step = Callable[[RawConnection], None]
#: A script: steps run in order, or one callable doing everything.
Script = Sequence[Step] | Step


# -- steps ----------------------------------------------------------------------


def send(data: bytes, *, ignore_errors: bool = False) -> Step:
    """Send raw bytes (``ignore_errors``: the client may already be gone)."""

    def step(conn: RawConnection) -> None:
        try:
            conn.send(data)
        except OSError:
            if not ignore_errors:
                raise

    step.__qualname__ = f"send({data[:20]!r}...)"
    return step


def send_frame(opcode: int, payload: bytes | str = b"", **options: object) -> Step:
    """Send one frame built by :func:`build_frame` with these arguments."""
    data = build_frame(opcode, payload, **options)  # type: ignore[arg-type]
    step = send(data)
    step.__qualname__ = f"send_frame({Op(opcode).name if opcode in Op._value2member_map_ else opcode})"
    return step


def send_close(code: int | None = 1000, reason: str = "") -> Step:
    """Send a close frame."""
    return send_frame(Op.CLOSE, close_payload(code, reason))


def expect_frame(
    opcode: int | None = None,
    payload: bytes | None = None,
    *,
    timeout: float | None = None,
    skip_control: bool = True,
) -> Step:
    """Read the client's next data frame (pings/pongs skipped) and check it."""

    def step(conn: RawConnection) -> None:
        while True:
            frame = conn.read_frame(timeout)
            if frame is None:
                raise ScriptError("client closed TCP while a frame was expected")
            if skip_control and frame.opcode in (Op.PING, Op.PONG):
                continue
            break
        if not frame.masked:
            raise ScriptError("client frame is not masked")
        if opcode is not None and frame.opcode != opcode:
            raise ScriptError(f"expected opcode {opcode}, got {frame.opcode} ({frame!r})")
        if payload is not None and frame.payload != payload:
            raise ScriptError(f"expected payload {payload!r}, got {frame.payload!r}")

    return step


def expect_close(
    code: int | Iterable[int] | None = None, *, timeout: float | None = None, answer_pings: bool = False
) -> Step:
    """Read frames until the client's close frame; check its code (one or several allowed).

    Data frames read on the way are kept in ``conn.frames``. A client that closes TCP
    without a close frame fails the step.
    """
    allowed = None if code is None else ({code} if isinstance(code, int) else set(code))

    def step(conn: RawConnection) -> None:
        while True:
            frame = conn.read_frame(timeout)
            if frame is None:
                raise ScriptError("client closed TCP without sending a close frame")
            if frame.opcode == Op.PING and answer_pings:
                conn.send(build_frame(Op.PONG, frame.payload))
            if frame.opcode == Op.CLOSE:
                break
        if allowed is not None and frame.close_code not in allowed:
            raise ScriptError(
                f"expected close code {sorted(allowed)}, got {frame.close_code} reason {frame.close_reason!r}"
            )

    return step


def echo_close() -> Step:
    """Answer the client's close frame with the same code (or an empty one)."""

    def step(conn: RawConnection) -> None:
        closes = conn.close_frames
        payload = closes[-1].payload[:2] if closes else close_payload(1000)
        try:
            conn.send(build_frame(Op.CLOSE, payload))
        except OSError:
            pass  # the client may have given up already

    return step


def serve_until_close(
    *, pong: bool = True, echo: bool = False, echo_close_frame: bool = True, timeout: float | None = None
) -> Step:
    """Read frames until the client's close frame, answering pings (``pong``) and
    echoing data frames (``echo``); then answer the close (``echo_close_frame``).

    Returns quietly when the client closes TCP without a close frame.
    """

    def step(conn: RawConnection) -> None:
        while True:
            frame = conn.read_frame(timeout)
            if frame is None:
                return
            if frame.opcode == Op.PING and pong:
                conn.send(build_frame(Op.PONG, frame.payload))
            elif frame.opcode in (Op.TEXT, Op.BINARY, Op.CONT) and echo:
                conn.send(build_frame(frame.opcode, frame.payload, fin=frame.fin))
            elif frame.opcode == Op.CLOSE:
                if echo_close_frame:
                    echo_close()(conn)
                return

    return step


def read_request(*, timeout: float | None = None) -> Step:
    """Read the request head (for scripts run with ``handshake=False``)."""

    def step(conn: RawConnection) -> None:
        conn.read_request(timeout)

    return step


def wait_eof(timeout: float | None = None, *, required: bool = True) -> Step:
    """Wait for the client to close TCP (``required``: fail the script if it doesn't)."""

    def step(conn: RawConnection) -> None:
        if not conn.wait_eof(timeout) and required:
            raise ScriptError("the client did not close the TCP connection")

    return step


def sleep(seconds: float) -> Step:
    """Do nothing for a while."""

    def step(conn: RawConnection) -> None:
        time.sleep(seconds)

    return step


def wait(event: threading.Event, timeout: float | None = None) -> Step:
    """Block until the test sets ``event``."""

    def step(conn: RawConnection) -> None:
        if not event.wait(timeout or conn.step_timeout):
            raise ScriptError("the test did not set the event in time")

    return step


def signal(event: threading.Event) -> Step:
    """Set ``event`` (tell the test the script got here)."""

    def step(conn: RawConnection) -> None:
        event.set()

    return step


def call(fn: Callable[[RawConnection], None]) -> Step:
    """Run any callable as a step (spelled out for readability in scripts)."""
    return fn


def close() -> Step:
    """Close the socket (a FIN; the client sees the end of the stream)."""

    def step(conn: RawConnection) -> None:
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.sock.close()

    return step


def abort() -> Step:
    """Reset the connection (RST, via ``SO_LINGER`` 0)."""

    def step(conn: RawConnection) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

    return step


def stream_oversized_head(total: int = 16 << 20) -> Step:
    """Answer with a 101 status line then header lines that never end (up to ``total`` bytes),
    stopping as soon as the client gives up. Records ``"gave up after N bytes"`` in notes."""

    def step(conn: RawConnection) -> None:
        conn.read_request()
        sent = 0
        chunk_lines = b"".join(b"X-Padding-%d: %s\r\n" % (i, b"a" * 1000) for i in range(64))
        try:
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
            while sent < total:
                conn.send(chunk_lines)
                sent += len(chunk_lines)
        except OSError:
            conn.notes.append(f"client gave up after {sent} bytes")
            return
        conn.notes.append(f"client read all {sent} bytes")

    return step


# -- the server -------------------------------------------------------------------


class RawServer:
    """A loopback server that runs a script of raw steps on each connection it accepts.

    Args:
        script: the steps run after the handshake (or one callable).
        accept: the ``Sec-WebSocket-Accept`` value to send (default: the right one).
        handshake: answer the opening handshake before the script (False: the script
            sees the connection right after ``accept()``).
        response: the whole response head to send instead of a computed 101, as bytes
            or a callable of the connection.
        extra_headers: headers added to the computed 101 response.
        trailing: bytes sent in the same ``sendall`` as the 101 response (a frame glued
            to the handshake).
        connections: how many connections to accept before the thread ends.
        host: ``127.0.0.1`` or ``::1``.
        step_timeout: how long a blocking step waits for the client.
        ssl_context: a server-side ``ssl.SSLContext``: speak TLS (``wss://``).
        recv_buffer: ``SO_RCVBUF`` of accepted sockets (a small one makes a peer that
            stops reading fill up quickly).
    """

    def __init__(
        self,
        script: Script = (),
        *,
        accept: str | None = None,
        handshake: bool = True,
        response: bytes | Callable[[RawConnection], bytes] | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
        trailing: bytes = b"",
        connections: int = 1,
        host: str = "127.0.0.1",
        step_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        recv_buffer: int | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.steps: list[Step] = [script] if callable(script) else list(script)
        self.accept = accept
        self.handshake = handshake
        self.response = response
        self.extra_headers = list(extra_headers)
        self.trailing = trailing
        self.max_connections = connections
        self.host = host
        self.step_timeout = step_timeout
        self.connections: list[RawConnection] = []
        self.errors: list[BaseException] = []
        #: Set when a request head has been read (the handshake step).
        self.request_received = threading.Event()
        #: Set when every connection's script has ended (or the server stopped).
        self.done = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if recv_buffer is not None:  # inherited by accepted sockets (set before listen)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        self._listener.bind((host, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._current: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"rawserver-{self.port}", daemon=True)
        self._started = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> RawServer:
        """Start the server thread (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, unblock the running script and join the thread."""
        self._stopping.set()
        current = self._current
        if current is not None:
            try:
                current.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._started:
            self._thread.join(10)
        self._listener.close()
        self.done.set()

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, path: str = "/", scheme: str | None = None) -> str:
        """The URL that reaches this server."""
        if scheme is None:
            scheme = "ws" if self.ssl_context is None else "wss"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def join(self, timeout: float = 10.0) -> None:
        """Wait until every script has ended; raise the first step error, if any."""
        if not self.done.wait(timeout):
            raise AssertionError(f"raw server script did not finish within {timeout}s")
        if self.errors:
            first = self.errors[0]
            raise AssertionError(f"raw server script failed: {first!r}") from first

    @property
    def connection(self) -> RawConnection:
        """The first accepted connection (most tests have only one)."""
        if not self.connections:
            raise AssertionError("the raw server accepted no connection")
        return self.connections[0]

    # -- the thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            accepted = 0
            while accepted < self.max_connections and not self._stopping.is_set():
                try:
                    sock, address = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                accepted += 1
                self._serve(sock, address)
        finally:
            self.done.set()

    def _serve(self, sock: socket.socket, address: tuple[object, ...]) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock.settimeout(self.step_timeout)
            try:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(exc)
                sock.close()
                return
        conn = RawConnection(sock=sock, address=address, step_timeout=self.step_timeout)
        self.connections.append(conn)
        self._current = sock
        try:
            if self.handshake:
                self._handshake(conn)
            for step in self.steps:
                if self._stopping.is_set():
                    break
                step(conn)
        except BaseException as exc:  # recorded for join(); the thread must not die loudly
            if not self._stopping.is_set():
                logger.debug("raw server step failed", exc_info=True)
                self.errors.append(exc)
        finally:
            self._current = None
            try:
                sock.close()
            except OSError:
                pass

    def _handshake(self, conn: RawConnection) -> None:
        conn.read_request()
        self.request_received.set()
        if self.response is not None:
            head = self.response(conn) if callable(self.response) else self.response
        else:
            key = conn.request_headers.get("sec-websocket-key", "")
            accept = self.accept if self.accept is not None else accept_key(key)
            lines = [
                "HTTP/1.1 101 Switching Protocols",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Accept: {accept}",
            ]
            lines += [f"{name}: {value}" for name, value in self.extra_headers]
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn.send(head + self.trailing)


def finish_within(fn: Callable[[], T], timeout: float = 10.0, *, name: str = "test-call") -> T:
    """Run ``fn`` on a helper thread and return its result, failing if it does not finish.

    Used where a hang is the bug under test (a ``close()`` that never returns): the test
    fails after ``timeout`` instead of hanging the suite. Exceptions propagate.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)!r} did not return within {timeout}s")
    if error:
        raise error[0]
    return result[0]
