"""``WebSocketClient``: the seed's event-style client object (API.md section 3).

It owns the configuration and the opening: URL, transport (TCP, proxy, TLS), the opening
handshake, then it hands the socket to a :class:`~wsclient.connection.WebSocketConnection`.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .config import ClientConfig
from .connection import WebSocketConnection
from .events import EventEmitter
from .exceptions import ConnectFailed, ConnectTimeout, InvalidStatus, InvalidURL, WebSocketError
from .handshake import ClientHandshake
from .protocol import Protocol
from .transport import TransportOptions, open_stream, remaining, translate_error
from .uri import parse_uri

__all__ = ["WebSocketClient"]

logger = logging.getLogger("wsclient.client")

DEFAULT_TIMEOUT = 10.0
_ABORTED = "the connection attempt was aborted"

_REQUEST_OPTION_KEYS = frozenset(
    {
        "proxy", "proxy_headers", "proxy_verify", "timeout", "source_address", "socket_options",
        "server_hostname", "ssl_context", "proxies", "verify", "cert", "trust_env",
    }
)


class _Attempt:
    """One opening in progress (so that ``abort()`` can reach its socket)."""

    __slots__ = ("aborted", "done", "sockets")

    def __init__(self) -> None:
        self.aborted = False
        self.sockets: list[Any] = []
        self.done = False


class WebSocketClient(EventEmitter):
    """Makes WebSocket connections (WebSocket-Node's ``WebSocketClient``).

    Args:
        config: a :class:`ClientConfig`; keyword options (the fields of ``ClientConfig``)
            build one or override its fields.

    Events:
        ``connect(connection)``: the connection is open.
        ``connect_failed(error)``: a ``ConnectFailed``; ``str(error)`` describes it.
        ``http_response(response, client)``: the server answered with a non-101 status;
        when this event has listeners, ``connect_failed`` is not emitted for that answer.

    Raises:
        ValueError: an option value is invalid.
        TypeError: an option name is unknown.
    """

    EVENTS = frozenset({"connect", "connect_failed", "http_response"})

    def __init__(self, config: ClientConfig | None = None, **options: Any) -> None:
        super().__init__()
        unknown = set(options) - ClientConfig.option_names()
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        if config is None:
            config = ClientConfig(**options)
        elif options:
            config = dataclasses.replace(config, **options)
        self.config = config
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None
        self._thread: threading.Thread | None = None

    def connect(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        request_options: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> WebSocketConnection | None:
        """Open a connection to ``url``.

        Args:
            url: a ``ws://`` or ``wss://`` URL.
            protocols: subprotocols to offer (``Sec-WebSocket-Protocol``).
            origin: the ``Origin`` header (``Sec-WebSocket-Origin`` for version 8); None: not sent.
            headers: extra request headers.
            request_options: transport options: ``proxy``, ``proxy_headers``,
                ``proxy_verify``, ``timeout``, ``source_address``, ``socket_options``,
                ``server_hostname``, ``ssl_context``, and ``proxies``, ``verify``, ``cert``,
                ``trust_env`` as :func:`wsclient.connect` takes them.
            wait: block until the opening ends and return the connection (or raise); with
                False, return None at once and report through the events.

        Raises:
            ConnectFailed: (or a subclass) the opening failed; with ``wait=True`` only.
            ValueError: a header, origin or subprotocol cannot be sent.
        """
        ro = dict(request_options or {})
        unknown = set(ro) - _REQUEST_OPTION_KEYS
        if unknown:
            logger.debug("request_options keys not used by the transport: %s", sorted(unknown))
        # A bad URL ends the opening like any other ConnectFailed: the event fires too.
        try:
            uri = parse_uri(url)
        except InvalidURL as exc:
            self._emit("connect_failed", exc)
            if wait:
                raise
            return None
        # Programming mistakes (bad header names or values) raise ValueError here.
        handshake = ClientHandshake(
            uri,
            subprotocols=list(protocols) if protocols is not None and not isinstance(protocols, str) else protocols,  # type: ignore[arg-type]
            headers=headers,
            origin=origin,
            version=self.config.web_socket_version,
            deflate=self.config.compression,
        )
        attempt = _Attempt()
        with self._lock:
            if self._attempt is not None and not self._attempt.done:
                raise RuntimeError("a connection attempt of this client is already in progress")
            self._attempt = attempt
        if wait:
            return self._run_attempt(attempt, uri, handshake, ro, raise_error=True)
        thread = threading.Thread(
            target=self._run_attempt,
            args=(attempt, uri, handshake, ro, False),
            name="wsclient-connect",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        return None

    def abort(self) -> None:
        """Cancel the opening in progress (from any thread).

        Its socket is closed, ``connect_failed`` fires with a ``ConnectFailed`` saying it was
        aborted, and a blocked ``connect(wait=True)`` raises it. After ``connect`` or
        ``connect_failed`` fired, it does nothing.
        """
        with self._lock:
            attempt = self._attempt
            if attempt is None or attempt.done:
                return
            attempt.aborted = True
            sockets = list(attempt.sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # ------------------------------------------------------------------ the opening

    def _run_attempt(
        self,
        attempt: _Attempt,
        uri: Any,
        handshake: ClientHandshake,
        ro: dict[str, Any],
        raise_error: bool,
    ) -> WebSocketConnection | None:
        try:
            conn = self._open(attempt, uri, handshake, ro)
        except BaseException as exc:
            error = exc
            if not isinstance(exc, WebSocketError):
                if not isinstance(exc, Exception):
                    self._end(attempt)
                    raise
                error = ConnectFailed(f"unexpected error while connecting: {exc!r}")
                error.__cause__ = exc
            if attempt.aborted and str(error) != _ABORTED:
                # Whatever the aborted socket made the opening fail with, say why.
                error = ConnectFailed(_ABORTED)
                error.__cause__ = exc
            self._end(attempt)
            suppressed = isinstance(error, InvalidStatus) and self.listeners("http_response")
            if suppressed:
                assert isinstance(error, InvalidStatus)
                self._emit("http_response", error.response, self)
            else:
                self._emit("connect_failed", error)
            if raise_error:
                if error is exc:
                    raise  # keeps the __cause__ the transport set
                raise error from exc
            return None
        self._end(attempt)
        self._emit("connect", conn)
        conn._start()
        return conn

    def _end(self, attempt: _Attempt) -> None:
        with self._lock:
            attempt.done = True
            attempt.sockets.clear()

    def _open(
        self, attempt: _Attempt, uri: Any, handshake: ClientHandshake, ro: dict[str, Any]
    ) -> WebSocketConnection:
        config = self.config
        timeout = ro.get("timeout", DEFAULT_TIMEOUT)
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        options = TransportOptions(
            verify=ro.get("verify", True),
            cert=ro.get("cert"),
            tls_options=config.tls_options,
            proxies=ro.get("proxies"),
            trust_env=ro.get("trust_env", True),
            request_options=ro,
            disable_nagle_algorithm=config.disable_nagle_algorithm,
            source_address=ro.get("source_address"),
            socket_options=ro.get("socket_options"),
            server_hostname=ro.get("server_hostname"),
            ssl_context=ro.get("ssl_context") or config.tls_options.get("ssl_context"),
        )

        def register(sock: Any) -> None:
            with self._lock:
                attempt.sockets.append(sock)
                aborted = attempt.aborted
            if aborted:
                _shutdown(sock)

        def check_abort() -> None:
            if attempt.aborted:
                raise ConnectFailed(_ABORTED)

        check_abort()
        sock = open_stream(uri, options, deadline, on_socket=register)
        try:
            check_abort()
            what = f"opening handshake with {uri}"
            try:
                sock.settimeout(remaining(deadline))
                sock.sendall(handshake.request_bytes())
                response = None
                while response is None:
                    try:
                        sock.settimeout(remaining(deadline))
                        data = sock.recv(65536)
                    except (TimeoutError, ConnectTimeout):
                        if not handshake.has_head:
                            raise
                        # A non-101 whose body did not end in time: report what came.
                        data = b""
                    check_abort()
                    response = handshake.receive_data(data) if data else handshake.receive_eof()
            except (OSError, ValueError) as exc:
                check_abort()
                if isinstance(exc, ValueError) and not isinstance(exc, OSError):
                    raise
                err = translate_error(exc, what)
                if isinstance(err, ConnectTimeout):
                    err = ConnectTimeout(f"{what}: timed out waiting for the server's answer")
                raise err from exc
            subprotocol, deflate = handshake.validate()
            protocol = Protocol(
                max_frame_size=config.max_received_frame_size,
                max_message_size=config.max_received_message_size,
                assemble_fragments=config.assemble_fragments,
                fragmentation_threshold=config.fragmentation_threshold if config.fragment_outgoing_messages else None,
                deflate=deflate,
                initial_data=handshake.trailing_data,
            )
            sock.settimeout(None)
            extensions = [(deflate.name, dict(deflate.params))] if deflate is not None else []
            logger.debug("connected to %s (subprotocol %r, extensions %r)", uri, subprotocol, extensions)
            return WebSocketConnection(
                sock,
                protocol,
                config=config,
                response=handshake.response,  # type: ignore[arg-type]
                subprotocol=subprotocol,
                extensions=extensions,
            )
        except BaseException:
            _shutdown(sock)
            try:
                sock.close()
            except OSError:
                pass
            raise


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
