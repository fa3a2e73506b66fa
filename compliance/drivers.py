"""Echo clients that the Autobahn fuzzing server tests, one per WebSocket library.

The fuzzing server (``wstest -m fuzzingserver``) plays the server side of each
test case; the client under test connects to ``/runCase?case=N&agent=NAME`` and
echoes every message back with the same type until the connection closes. How
the client reacts to bad input (which close code it sends, whether it drops the
TCP connection, whether it echoes a message it should have refused) is what the
suite grades.

Drivers:

``wsclient``
    The library of this repository, through its public API only
    (``wsclient.connect``). This is what CI grades.
``websockets``
    The ``websockets`` package's threaded client
    (``websockets.sync.client.connect``), kept for comparison.
``websocket-client``
    The ``websocket-client`` package (``websocket.create_connection``), kept
    for comparison. It has no permessage-deflate support.

Every driver is used the way a typical application would use its library:
iterate (or ``recv``) and echo, let the library decide how to close. The
comparison drivers import their package lazily, so the runner needs neither
installed unless they are selected.

Each :class:`Driver` instance runs exactly one case. :meth:`Driver.abort` may
be called from another thread (the runner's per-case timeout) to tear the
connection down so that :meth:`Driver.run_case` returns.
"""

from __future__ import annotations

import abc
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["DRIVERS", "MAX_SIZE", "Driver", "WebSocketClientDriver", "WebsocketsDriver", "WsclientDriver"]

logger = logging.getLogger("wsclient.compliance.drivers")

#: Frame and message size limit given to every library: the suite sends up to
#: 16 MiB messages in group 9, far above the libraries' defaults.
MAX_SIZE = 64 << 20
#: Opening-handshake timeout; loopback answers in milliseconds.
OPEN_TIMEOUT = 10.0
#: How long a library waits for the server's answer to its close frame.
CLOSE_TIMEOUT = 5.0


class Driver(abc.ABC):
    """Runs one Autobahn case: connect, echo every message, return how it ended."""

    #: The ``--driver`` name, also the default ``--agent``.
    name: ClassVar[str]

    def __init__(self, *, compression: bool) -> None:
        """Create a driver for one case.

        Args:
            compression: offer permessage-deflate (when the library supports it).
        """
        self.compression = compression
        #: Messages the library delivered, and messages echoed back without an error.
        self.received = 0
        self.echoed = 0
        self._lock = threading.Lock()
        self._aborted = False
        self._abort_hook: Callable[[], None] | None = None

    @abc.abstractmethod
    def run_case(self, url: str) -> str:
        """Connect to ``url`` and echo until the connection is closed.

        Returns a short description of how the case ended on the client side
        (close code, exception). Exceptions from the library propagate; the
        runner records them (many cases are expected to end in an error).
        """

    def abort(self) -> None:
        """Tear the connection down from another thread (per-case timeout)."""
        with self._lock:
            self._aborted = True
            hook = self._abort_hook
        if hook is not None:
            try:
                hook()
            except Exception:  # the connection may already be gone
                logger.debug("abort hook failed", exc_info=True)

    def _set_abort_hook(self, hook: Callable[[], None]) -> None:
        """Register how to tear down the live connection; runs it if already aborted."""
        with self._lock:
            self._abort_hook = hook
            aborted = self._aborted
        if aborted:
            hook()
            raise TimeoutError("aborted by the runner before the echo loop started")


def _shutdown_socket(sock: socket.socket) -> None:
    """Make a blocked ``recv`` on ``sock`` return at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class WsclientDriver(Driver):
    """wsclient through its requests-style front door, ``wsclient.connect``."""

    name = "wsclient"

    def run_case(self, url: str) -> str:
        """Echo with ``for message in ws``; see :meth:`Driver.run_case`."""
        import wsclient

        options: dict[str, Any] = {
            "max_received_frame_size": MAX_SIZE,
            "max_received_message_size": MAX_SIZE,
            # Keepalive is not part of the suite: a ping sent while the
            # single-threaded server is busy pushing 16 MiB would only add noise.
            "ping_interval": None,
            "close_timeout": CLOSE_TIMEOUT,
        }
        if not self.compression:
            options["compression"] = None
        ws = wsclient.connect(url, timeout=OPEN_TIMEOUT, proxies={}, **options)
        self._set_abort_hook(ws.drop)
        try:
            with ws:
                for message in ws:
                    self.received += 1
                    if isinstance(message, str):
                        ws.send_text(message)
                    else:
                        ws.send_bytes(message)
                    self.echoed += 1
        except wsclient.ConnectionClosed as exc:
            return f"{type(exc).__name__} code={exc.code} reason={exc.reason!r}"
        return f"closed code={ws.close_code} reason={ws.close_reason!r}"


class WebsocketsDriver(Driver):
    """The ``websockets`` package's threaded client (``websockets.sync.client``)."""

    name = "websockets"

    def run_case(self, url: str) -> str:
        """Echo with ``for message in ws``; see :meth:`Driver.run_case`."""
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        ws = connect(
            url,
            max_size=MAX_SIZE,
            compression="deflate" if self.compression else None,
            ping_interval=None,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            proxy=None,
        )
        self._set_abort_hook(lambda: _shutdown_socket(ws.socket))
        try:
            with ws:
                for message in ws:
                    self.received += 1
                    ws.send(message)  # str -> text frame, bytes -> binary frame
                    self.echoed += 1
        except ConnectionClosed as exc:
            return f"{type(exc).__name__}: {exc}"
        return f"closed code={ws.close_code} reason={ws.close_reason!r}"


class WebSocketClientDriver(Driver):
    """The ``websocket-client`` package (``websocket.create_connection``)."""

    name = "websocket-client"

    def run_case(self, url: str) -> str:
        """Echo with ``recv_data()``; on an error close the way ``WebSocketApp`` does.

        ``websocket-client`` answers the server's close frame inside
        ``recv_data``; on a protocol or payload error it only raises, so, like
        its own ``WebSocketApp``, the driver then calls ``close()``.
        """
        import websocket

        ws = websocket.create_connection(
            url, timeout=OPEN_TIMEOUT, enable_multithread=True, http_no_proxy=["127.0.0.1"]
        )
        ws.settimeout(None)
        self._set_abort_hook(ws.abort)
        shutdown: Callable[[], None] = ws.shutdown  # untyped in websocket-client
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    return f"closed by server code={code}"
                self.received += 1
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    text = data.decode("utf-8") if isinstance(data, bytes) else data
                    ws.send(text, websocket.ABNF.OPCODE_TEXT)
                else:
                    ws.send_bytes(data)
                self.echoed += 1
        except Exception as exc:
            try:
                ws.close(timeout=CLOSE_TIMEOUT)
            finally:
                shutdown()
            return f"{type(exc).__name__}: {exc}"
        finally:
            shutdown()


#: ``--driver`` name -> driver class.
DRIVERS: dict[str, type[Driver]] = {
    cls.name: cls for cls in (WsclientDriver, WebsocketsDriver, WebSocketClientDriver)
}
