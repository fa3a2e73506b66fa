"""Socket-like wrappers used by the proxy code.

* :class:`ReplayStream` hands out bytes that were read past the proxy's ``200`` answer
  before it reads the socket again (they belong to the tunnelled stream).
* :class:`TLSInTLSStream` runs the target's TLS (an ``ssl.SSLObject`` over memory BIOs)
  inside the TLS connection to an ``https://`` proxy. Reads and writes are serialised so
  that a reader thread blocked in ``recv()`` never stops another thread from sending, and
  ``shutdown()`` unblocks such a reader.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any, Protocol

from .._net import Deadline, map_errors
from ..exceptions import ConnectTimeout, TLSError

__all__ = ["ReplayStream", "Stream", "TLSInTLSStream", "wrap_tls_in_tls"]

logger = logging.getLogger("wsclient.proxy")

_Buffer = bytes | bytearray | memoryview


class Stream(Protocol):
    """The socket methods the connection uses (docs/internals.md)."""

    def recv(self, bufsize: int, /) -> bytes: ...
    def recv_into(self, buffer: Any, nbytes: int = 0, /) -> int: ...
    def sendall(self, data: Any, /) -> None: ...
    def settimeout(self, value: float | None, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...
    def getpeername(self) -> Any: ...
    def fileno(self) -> int: ...


def _shutdown_socket(sock: Any, how: int) -> None:
    """Shut the file descriptor down without ``SSLSocket.shutdown``'s side effect.

    ``SSLSocket.shutdown`` forgets its TLS state, after which ``sendall`` on it would write
    plaintext; shutting the underlying socket down keeps the TLS state and still wakes up a
    thread blocked in ``recv``.
    """
    if isinstance(sock, ssl.SSLSocket):
        socket.socket.shutdown(sock, how)
    else:
        sock.shutdown(how)


class _SocketDelegate:
    """The socket-level calls both wrappers pass straight to the socket underneath."""

    _sock: Any

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()  # type: ignore[no-any-return]

    def shutdown(self, how: int) -> None:
        """Shut the socket down; a thread blocked in ``recv`` then returns ``b""``."""
        _shutdown_socket(self._sock, how)

    def getpeername(self) -> Any:
        """The peer of the socket (the proxy, for a tunnel)."""
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self._sock.getsockopt(*args)


class ReplayStream(_SocketDelegate):
    """A stream that returns ``prefix`` first, then reads ``sock``.

    Everything else is passed to ``sock``. ``pending()`` counts the bytes still held, so a
    caller that waits with ``select()`` on ``fileno()`` must look at it first.
    """

    def __init__(self, sock: Any, prefix: bytes) -> None:
        self._sock = sock
        self._prefix = bytearray(prefix)
        self._lock = threading.Lock()

    @property
    def raw(self) -> Any:
        """The wrapped socket."""
        return self._sock

    def _take(self, size: int) -> bytes | None:
        with self._lock:
            if not self._prefix:
                return None
            data = bytes(self._prefix[:size])
            del self._prefix[:size]
            return data

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Held bytes first, then ``sock.recv``."""
        if bufsize > 0:
            data = self._take(bufsize)
            if data is not None:
                return data
        return bytes(self._sock.recv(bufsize, flags))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Like ``socket.recv_into``, held bytes first."""
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data = self._take(size) if size > 0 else None
        if data is not None:
            view[: len(data)] = data
            return len(data)
        return int(self._sock.recv_into(buffer, nbytes, flags))

    def pending(self) -> int:
        """Bytes readable without touching the socket (held bytes, TLS-buffered bytes)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._prefix) + int(inner)

    def send(self, data: _Buffer) -> int:
        return int(self._sock.send(data))

    def sendall(self, data: _Buffer) -> None:
        self._sock.sendall(data)

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # Whatever else the socket offers (getpeercert, version, cipher, family, ...).
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<ReplayStream held={len(self._prefix)} sock={self._sock!r}>"


class TLSInTLSStream(_SocketDelegate):
    """TLS to the target, carried inside the TLS connection to an ``https://`` proxy.

    Built by :func:`wrap_tls_in_tls`. Three locks, always taken in this order:

    * ``_read_lock``: one reader at a time; held while blocked on the proxy socket.
    * ``_write_lock``: one writer at a time; held while encrypting and sending, so records
      leave in the order they were made.
    * ``_tls_lock``: guards the ``SSLObject`` and its memory BIOs; never held while
      blocking on the network.

    A reader waiting for the proxy socket therefore never blocks a sender.
    """

    _RECV_SIZE = 64 * 1024
    _WRITE_CHUNK = 64 * 1024

    def __init__(
        self,
        sock: Any,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._sock = sock
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._tls_lock = threading.Lock()
        self._closed = False
        self._shut_down = False  # shutdown() was called: a failing read is the end
        self._eof = False

    # -- reading ---------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` decrypted bytes; ``b""`` at the end of the stream.

        Raises ``TimeoutError`` after the timeout set with :meth:`settimeout`, and
        ``OSError``/``ssl.SSLError`` on a broken connection.
        """
        if flags:
            raise ValueError("non-zero flags are not allowed on a TLS stream")
        if bufsize <= 0:
            return b""
        with self._read_lock:
            while True:
                with self._tls_lock:
                    if self._closed:
                        return b""
                    try:
                        return self._ssl.read(bufsize)
                    except ssl.SSLWantReadError:
                        if self._eof:
                            return b""
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        # A close_notify, or the tunnel ended without one (a "ragged"
                        # EOF, reported as end of stream like ``suppress_ragged_eofs``).
                        return b""
                    has_output = self._outgoing.pending > 0
                if has_output:
                    self._flush(blocking=False)
                try:
                    data = self._sock.recv(self._RECV_SIZE)
                except OSError:
                    # After our own shutdown() the proxy TLS may report the end as a reset
                    # (seen on Python 3.13): that is the end of the stream we asked for.
                    if self._shut_down:
                        return b""
                    raise
                with self._tls_lock:
                    if data:
                        self._incoming.write(data)
                    else:
                        self._eof = True
                        self._incoming.write_eof()

    def shutdown(self, how: int) -> None:
        """Shut the proxy connection down; a thread blocked in ``recv`` then returns ``b""``."""
        self._shut_down = True
        super().shutdown(how)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Like ``socket.recv_into``."""
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data = self.recv(size, flags)
        view[: len(data)] = data
        return len(data)

    def pending(self) -> int:
        """Bytes already buffered (decrypted or not) that ``select()`` cannot see."""
        with self._tls_lock:
            buffered = self._ssl.pending() + self._incoming.pending
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return buffered + int(inner)

    # -- writing ---------------------------------------------------------------------

    def _flush(self, *, blocking: bool) -> None:
        """Send whatever the SSLObject produced (e.g. a KeyUpdate answer after a read)."""
        if not self._write_lock.acquire(blocking=blocking):
            # The thread holding it drains the BIO before releasing it.
            return
        try:
            self._drain_locked()
        finally:
            self._write_lock.release()

    def _drain_locked(self) -> None:
        while True:
            with self._tls_lock:
                data = self._outgoing.read()
            if not data:
                return
            self._sock.sendall(data)

    def sendall(self, data: _Buffer) -> None:
        """Encrypt and send all of ``data``."""
        with memoryview(data) as view, view.cast("B") as octets:
            with self._write_lock:
                for start in range(0, max(len(octets), 1), self._WRITE_CHUNK):
                    chunk = octets[start : start + self._WRITE_CHUNK]
                    if not chunk:
                        break
                    with self._tls_lock:
                        if self._closed:
                            raise OSError(9, "the TLS stream is closed")
                        written = 0
                        while written < len(chunk):
                            # Memory BIOs take everything; the loop only guards against
                            # a partial write.
                            written += self._ssl.write(chunk[written:])
                        out = self._outgoing.read()
                    self._sock.sendall(out)
                self._drain_locked()

    def send(self, data: _Buffer) -> int:
        """Send all of ``data`` (as ``sendall``) and return its length."""
        self.sendall(data)
        return len(memoryview(data).cast("B"))

    # -- the rest of the socket interface --------------------------------------------

    def close(self) -> None:
        """Close the proxy connection (no close_notify, as ``SSLSocket.close``)."""
        with self._tls_lock:
            self._closed = True
        self._sock.close()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The target's certificate (not the proxy's)."""
        return self._ssl.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._ssl.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._ssl.cipher()

    def selected_alpn_protocol(self) -> str | None:
        return self._ssl.selected_alpn_protocol()

    @property
    def server_hostname(self) -> str | None:
        return self._ssl.server_hostname

    @property
    def family(self) -> int:
        return int(self._sock.family)

    def __repr__(self) -> str:
        return f"<TLSInTLSStream {self._ssl.server_hostname!r} via {self._sock!r}>"


def wrap_tls_in_tls(
    stream: Any,
    ssl_context: ssl.SSLContext,
    server_hostname: str | None,
    deadline: Deadline,
) -> TLSInTLSStream:
    """Do the target's TLS handshake inside ``stream`` (the TLS connection to the proxy).

    ``ssl_context`` is the target's context (its ``check_hostname`` and ``verify_mode``
    apply).

    Raises:
        ConnectTimeout: the handshake did not finish before ``deadline``.
        TLSError: the handshake failed (certificate, hostname, protocol, or the tunnel
            closed). ``stream`` is closed on failure.
    """
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    name = server_hostname or "the server"
    what = "in the TLS handshake through the proxy"
    try:
        with map_errors(
            {
                ssl.SSLCertVerificationError: lambda e: TLSError(
                    f"TLS certificate of {name} (through the proxy) could not be verified: "
                    f"{e.verify_message or e.reason}"
                ),
                ssl.SSLEOFError: lambda e: TLSError(
                    f"the connection through the proxy closed during the TLS handshake with {name}"
                ),
                ssl.SSLError: lambda e: TLSError(f"TLS handshake with {name} through the proxy failed: {e.reason or e}"),
                TimeoutError: lambda e: ConnectTimeout(f"timed out {what}"),
                OSError: lambda e: TLSError(
                    f"the connection through the proxy failed during the TLS handshake with {name}: {e}"
                ),
            }
        ):
            ssl_object = ssl_context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
            while True:
                try:
                    ssl_object.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                data = outgoing.read()
                if data:
                    stream.settimeout(deadline.timeout(what))
                    stream.sendall(data)
                if done:
                    break
                stream.settimeout(deadline.timeout(what))
                data = stream.recv(TLSInTLSStream._RECV_SIZE)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
    except BaseException:
        stream.close()
        raise
    logger.debug("TLS-in-TLS with %s established (%s)", server_hostname, ssl_object.version())
    return TLSInTLSStream(stream, ssl_object, incoming, outgoing)
