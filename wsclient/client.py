"""``WebSocketClient``: WebSocket-Node's event-style client object, in Python.

It owns the configuration and the opening: URL, transport (TCP, proxy, TLS), the opening
handshake, then it hands the socket to a :class:`~wsclient.connection.WebSocketConnection`.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from ._net import Deadline, Trace, map_errors, recv_within, send_within
from ._redact import mask_text
from .config import ClientConfig, config_for
from .connection import WebSocketConnection
from .events import EventEmitter
from .exceptions import (
    ConnectFailed,
    ConnectTimeout,
    InvalidStatus,
    InvalidURL,
    WebSocketError,
    redact_url,
    status_message,
)
from .handshake import ClientHandshake, header_pairs
from .protocol import Protocol
from .transport import TransportOptions, open_stream, parse_request_options
from .transport.tls import SYSTEM, require_truststore
from .uri import WSURI, parse_uri

if TYPE_CHECKING:
    from .reconnect import Reconnect

__all__ = ["WebSocketClient"]

logger = logging.getLogger("wsclient.client")

DEFAULT_TIMEOUT = 10.0
_ABORTED = "the connection attempt was aborted"

#: The answers a redirect is followed for (with a Location), when ``follow_redirects``.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Request headers that never follow a redirect to another origin (scheme, host, port).
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie"})


class _Attempt:
    """One opening in progress (so that ``abort()`` can reach its socket)."""

    __slots__ = ("aborted", "done", "running", "sockets", "trace")

    def __init__(self, trace: Trace | None = None) -> None:
        self.aborted = False
        self.running = False  # its thread (connect(wait=False)) began the opening
        self.sockets: list[Any] = []
        self.done = False
        # Diagnosis only (wsclient.diagnose): called as each stage of the opening ends.
        self.trace = trace


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
        ``reconnect(attempt, delay, error)``: with :meth:`reconnect`, before each wait:
        ``error`` is the failed opening's ``ConnectFailed``, or None when an open
        connection closed sooner than the backoff's ``maximum``.

    Raises:
        ValueError: an option value is invalid.
        TypeError: an option name is unknown.
    """

    EVENTS = frozenset({"connect", "connect_failed", "http_response", "reconnect"})

    def __init__(self, config: ClientConfig | None = None, **options: Any) -> None:
        super().__init__()
        unknown = set(options) - ClientConfig.option_names()
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        if config is None:
            config = config_for(options)
        elif options:
            config = dataclasses.replace(config, **options)
        self.config = config
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None
        self._thread: threading.Thread | None = None

    @overload
    def connect(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        request_options: Mapping[str, Any] | None = None,
        wait: Literal[True] = True,
    ) -> WebSocketConnection: ...

    @overload
    def connect(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        request_options: Mapping[str, Any] | None = None,
        *,
        wait: Literal[False],
    ) -> None: ...

    @overload
    def connect(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        request_options: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> WebSocketConnection | None: ...

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
                ``proxy_verify``, ``proxy_cert``, ``timeout``, ``source_address``,
                ``socket_options``, ``server_hostname``, ``ssl_context``, and ``proxies``,
                ``verify``, ``cert``, ``trust_env`` as :func:`wsclient.connect` takes them.
            wait: block until the opening ends and return the connection (or raise); with
                False, return None at once and report through the events.

        Raises:
            ConnectFailed: (or a subclass) the opening failed; with ``wait=True`` only.
            ValueError: a header, origin or subprotocol cannot be sent; an unknown
                ``proxies`` key.
            TypeError: an unknown ``request_options`` key.
        """
        return self._connect(url, protocols, origin, headers, request_options, wait, None)

    def _connect(
        self,
        url: str,
        protocols: Sequence[str] | str | None,
        origin: str | None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        request_options: Mapping[str, Any] | None,
        wait: bool,
        trace: Trace | None,
    ) -> WebSocketConnection | None:
        """:meth:`connect`, with the opening's stages reported to ``trace`` (``wsclient.diagnose``)."""
        ro = parse_request_options(
            request_options,
            tls_options=self.config.tls_options,
            disable_nagle_algorithm=self.config.disable_nagle_algorithm,
            default_timeout=DEFAULT_TIMEOUT,
        )
        # A bad URL ends the opening like any other ConnectFailed: the event fires too.
        try:
            uri = parse_uri(url)
        except InvalidURL as exc:
            self._emit("connect_failed", exc)
            if wait:
                raise
            return None
        # Programming mistakes (bad header names or values, in the request or for the
        # proxy) raise ValueError here, before any socket exists.
        handshake = ClientHandshake(
            uri,
            subprotocols=list(protocols) if protocols is not None and not isinstance(protocols, str) else protocols,  # type: ignore[arg-type]
            headers=headers,
            origin=origin,
            version=self.config.web_socket_version,
            deflate=self.config.compression,
            user_agent=self.config.user_agent,
        )
        if SYSTEM in (ro.verify, ro.proxy_verify):
            require_truststore()  # ImportError naming the extra, before any socket
        attempt = _Attempt(trace)
        with self._lock:
            if self._attempt is not None and not self._attempt.done:
                raise RuntimeError("a connection attempt of this client is already in progress")
            self._attempt = attempt
        if wait:
            return self._run_attempt(attempt, uri, handshake, ro, raise_error=True)
        thread = threading.Thread(
            target=self._run_attempt_thread,
            args=(attempt, uri, handshake, ro),
            name="wsclient-connect",
            daemon=True,
        )
        self._thread = thread
        try:
            thread.start()
        except BaseException:
            # Interrupted (Ctrl-C lands inside Thread.start()): unless the thread already
            # began, the attempt never happened, and the next connect() may start one.
            with self._lock:
                if not attempt.running:
                    attempt.done = True
                    if self._thread is thread:
                        self._thread = None
            raise
        return None

    def _run_attempt_thread(self, attempt: _Attempt, uri: Any, handshake: ClientHandshake, ro: TransportOptions) -> None:
        with self._lock:
            if attempt.done:  # the start was undone (see connect)
                return
            attempt.running = True
        self._run_attempt(attempt, uri, handshake, ro, raise_error=False)

    def reconnect(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        origin: str | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        request_options: Mapping[str, Any] | None = None,
        *,
        backoff: Iterable[float] | None = None,
        retry: Callable[[BaseException], bool] | None = None,
        max_attempts: int | None = None,
    ) -> Reconnect:
        """Keep a connection to ``url`` open, on a background thread, with the policy of
        :func:`wsclient.reconnect`.

        Each opening fires ``connect`` or ``connect_failed`` as :meth:`connect` does; before
        each wait, ``reconnect(attempt, delay, error)`` fires. When a connection closes, the
        next opening follows (at once when it had stayed open ``backoff.maximum`` seconds,
        else after the next delay). A failure that ``retry`` refuses, or the last one once
        ``max_attempts`` is reached, ends the loop (it is in the handle's ``error``).

        Returns:
            The :class:`~wsclient.Reconnect` handle: ``stop()`` ends the loop (interrupting
            a wait or an opening, closing the open connection with 1001), ``join()`` waits
            for its thread.

        Raises:
            InvalidURL, ValueError: a bad URL or header, at once.
            TypeError: an unknown ``request_options`` key, at once.
        """
        from .reconnect import Reconnect

        parse_uri(url)
        header_pairs(headers)
        ro = dict(request_options or {})
        parse_request_options(  # unknown keys, bad proxy headers: raised here, at once
            ro,
            tls_options=self.config.tls_options,
            disable_nagle_algorithm=self.config.disable_nagle_algorithm,
            default_timeout=DEFAULT_TIMEOUT,
        )

        def open_one() -> WebSocketConnection:
            conn = self.connect(url, protocols, origin, headers, ro, wait=True)
            assert conn is not None
            return conn

        handle = Reconnect(
            open_one,
            description=redact_url(url),
            backoff=backoff,
            retry=retry,
            max_attempts=max_attempts,
            on_retry=lambda attempt, delay, error: self._emit("reconnect", attempt, delay, error),
            on_stop=self.abort,
        )

        def run() -> None:
            try:
                for conn in handle:
                    closed = threading.Event()
                    conn.on("close", lambda code, reason, closed=closed: closed.set())
                    if conn.connected:
                        closed.wait()
            except Exception as exc:  # connect_failed already reported it
                handle.error = exc
                logger.info("stopped reconnecting to %s: %s", redact_url(url), exc)

        handle.thread = threading.Thread(target=run, name="wsclient-reconnect", daemon=True)
        handle.thread.start()
        return handle

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
        ro: TransportOptions,
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
        try:
            self._emit("connect", conn)
            conn._start()
        except BaseException:
            # Interrupted (Ctrl-C) before the caller got the connection: nobody else
            # could close it.
            conn.drop(1001)
            raise
        return conn

    def _end(self, attempt: _Attempt) -> None:
        with self._lock:
            attempt.done = True
            attempt.sockets.clear()

    def _open(
        self, attempt: _Attempt, uri: WSURI, handshake: ClientHandshake, ro: TransportOptions
    ) -> WebSocketConnection:
        """The opening: one hop, or with ``follow_redirects`` a hop per redirect, all of
        them within the one ``timeout``."""
        deadline = Deadline(ro.timeout)
        hops = 0
        while True:
            try:
                return self._open_hop(attempt, uri, handshake, ro, deadline)
            except InvalidStatus as exc:
                if not self.config.follow_redirects or attempt.aborted:
                    raise
                target = self._redirect(exc, uri, hops)
                if target is None:
                    raise
                hops += 1
                logger.info(
                    "following a %d redirect (%d of at most %d) from %s to %s",
                    exc.response.status, hops, self.config.max_redirects, uri, target,
                )
                handshake = _handshake_for(handshake, uri, target)
                uri = target

    def _redirect(self, exc: InvalidStatus, uri: WSURI, hops: int) -> WSURI | None:
        """Where a 3xx answer sends the opening: the next URL, None when the answer is
        not a redirect to follow (no Location, or another status).

        Raises:
            InvalidStatus: with the 3xx response and a message saying why it is not followed.
        """
        response = exc.response
        location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
        if not location:
            return None

        def refuse(why: str) -> InvalidStatus:
            return InvalidStatus(status_message(response, why), response)

        if hops >= self.config.max_redirects:
            raise refuse(f"more than max_redirects={self.config.max_redirects} redirects") from None
        # Resolve through the HTTP equivalent, then map http(s) to ws(s).
        base = ("https" if uri.secure else "http") + str(uri)[len(uri.scheme) :]
        try:
            absolute = urllib.parse.urljoin(base, location.strip())
        except ValueError:
            raise refuse("the Location is not a valid URL") from None
        scheme, sep, rest = absolute.partition("://")
        scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
        if not sep or scheme not in ("ws", "wss"):
            raise refuse("the Location is not an http(s):// or ws(s):// URL") from None
        try:
            target = parse_uri(f"{scheme}://{rest}")
        except InvalidURL as err:
            raise refuse(f"the Location is not a usable URL ({err})") from None
        if uri.secure and not target.secure:
            raise refuse("a redirect from wss:// to ws:// (a downgrade) is refused") from None
        if target.origin != uri.origin:
            # Credentials of one origin never go to another.
            target = dataclasses.replace(target, user_info=None)
        elif target.user_info is None and uri.user_info is not None:
            target = dataclasses.replace(target, user_info=uri.user_info)
        return target

    def _open_hop(
        self,
        attempt: _Attempt,
        uri: WSURI,
        handshake: ClientHandshake,
        options: TransportOptions,
        deadline: Deadline,
    ) -> WebSocketConnection:
        """One opening to ``uri`` (no redirects): transport, handshake, connection."""
        config = self.config

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
        sock = open_stream(uri, options, deadline, on_socket=register, trace=attempt.trace)
        try:
            check_abort()
            what = f"opening handshake with {uri}"
            try:
                with map_errors(
                    {
                        TimeoutError: lambda e: ConnectTimeout(f"{what}: timed out waiting for the server's answer"),
                        ConnectionRefusedError: lambda e: ConnectFailed(f"{what}: connection refused"),
                        OSError: lambda e: ConnectFailed(f"{what}: {e.strerror or e}"),
                    }
                ):
                    waiting = f"waiting for the server's answer ({what})"
                    request = handshake.request_bytes()
                    send_within(sock, request, deadline, waiting)
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug("handshake request:\n%s", mask_text(request.decode("latin-1").rstrip()))
                    response = None
                    while response is None:
                        try:
                            data = recv_within(sock, 65536, deadline, waiting)
                        except (TimeoutError, ConnectTimeout):
                            if not handshake.has_head:
                                raise
                            # A non-101 whose body did not end in time: report what came.
                            data = b""
                        check_abort()
                        response = handshake.receive_data(data) if data else handshake.receive_eof()
            except ConnectFailed:
                check_abort()
                raise
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("handshake response:\n%s", _response_head(response))
            subprotocol, deflate = handshake.validate()
            protocol = Protocol(
                max_frame_size=config.max_received_frame_size,
                max_message_size=config.max_received_message_size,
                assemble_fragments=config.assemble_fragments,
                fragmentation_threshold=config.fragmentation_threshold if config.fragment_outgoing_messages else None,
                deflate=deflate,
                initial_data=handshake.trailing_data,
            )
            if sock.gettimeout() is not None:  # recv_within() leaves a plain socket as it was
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


def _handshake_for(previous: ClientHandshake, uri: WSURI, target: WSURI) -> ClientHandshake:
    """The handshake of the next redirect hop: the same offer; the ``Authorization`` and
    ``Cookie`` headers are dropped when the origin changes."""
    headers: list[tuple[str, str]] = list(previous.headers or ())  # type: ignore[arg-type]
    if target.origin != uri.origin:
        headers = [(k, v) for k, v in headers if k.lower() not in _ORIGIN_BOUND_HEADERS]
    return ClientHandshake(
        target,
        subprotocols=previous.subprotocols,
        headers=headers,
        origin=previous.origin,
        version=previous.version,
        deflate=previous.deflate,
        user_agent=previous.user_agent,
    )


def _response_head(response: Any) -> str:
    """The response's status line and header fields, credentials masked (for DEBUG logs)."""
    lines = [f"{response.http_version} {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.raw_items()]
    return mask_text("\n".join(lines))


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
