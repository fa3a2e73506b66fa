"""Reconnecting for long-lived consumers: :func:`reconnect`, :class:`Reconnect`, :class:`Backoff`.

::

    for ws in wsclient.reconnect(url, **connect_kwargs):
        with ws:
            try:
                for message in ws:
                    handle(message)
            except wsclient.ConnectionClosedError:
                continue  # an abnormal close: open the next connection

Each iteration opens a new connection. Failed openings are retried after a delay from the
backoff (exponential with full jitter by default); ``retry=`` decides which failures are
worth retrying. A connection that closed before it stayed open ``backoff.maximum`` seconds
counts as unstable: the next opening waits for the next delay, so a server that accepts and
drops every connection is not hammered in a tight loop. One that stayed open that long
resets the backoff and the next opening starts at once.

Delivery is at most once: messages lost with a connection are not replayed.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .exceptions import (
    ConnectFailed,
    InvalidStatus,
    InvalidURL,
    ProxyAuthenticationRequired,
    TLSError,
)

if TYPE_CHECKING:
    from .connection import WebSocketConnection

__all__ = ["Backoff", "Reconnect", "default_retry", "reconnect", "retry_after"]

logger = logging.getLogger("wsclient.reconnect")

#: Without a ``maximum`` on the backoff (any iterable of delays), a connection counts as
#: stable after this many seconds.
DEFAULT_STABLE_AFTER = 60.0


class Backoff:
    """Exponential backoff with full jitter: an endless iterable of delays in seconds.

    The n-th delay (from 0) is drawn uniformly from ``[0, min(maximum, initial * factor**n)]``
    ("full jitter": many clients cut off at once by one outage do not come back in step).

    Args:
        initial: the cap of the first delay.
        factor: how the cap grows from one attempt to the next.
        maximum: the largest cap; also how long a connection must stay open before the
            backoff starts again from ``initial``.

    Raises:
        ValueError: a negative or non-finite value, or ``factor`` below 1.
    """

    def __init__(self, initial: float = 1.0, factor: float = 2.0, maximum: float = 60.0) -> None:
        for name, value in (("initial", initial), ("factor", factor), ("maximum", maximum)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite non-negative number, not {value!r}")
        if factor < 1:
            raise ValueError(f"factor must be at least 1, not {factor!r}")
        self.initial = float(initial)
        self.factor = float(factor)
        self.maximum = float(maximum)

    def caps(self) -> Iterator[float]:
        """The caps before jitter: ``initial``, ``initial * factor``, ... up to ``maximum``."""
        cap = self.initial
        while True:
            yield min(cap, self.maximum)
            if cap < self.maximum:
                cap *= self.factor

    def __iter__(self) -> Iterator[float]:
        for cap in self.caps():
            yield random.uniform(0.0, cap)

    def __repr__(self) -> str:
        return f"Backoff(initial={self.initial}, factor={self.factor}, maximum={self.maximum})"


def retry_after(exc: BaseException) -> float | None:
    """The seconds a ``Retry-After`` header of a 429/503 (or any) answer asks to wait, if any.

    Both forms of RFC 9110 are read: a number of seconds and an HTTP date.
    """
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _is_certificate_error(exc: TLSError) -> bool:
    cause = exc.__cause__
    if isinstance(cause, (ssl.SSLCertVerificationError, ssl.CertificateError)):
        return True
    text = str(exc).lower()
    # Our own configuration errors (a CA or client certificate file that cannot be loaded)
    # will not fix themselves either.
    return "certificate" in text and ("verif" in text or "cannot load" in text)


def default_retry(exc: BaseException) -> bool:
    """The default ``retry=`` policy: whether a failed opening is worth another attempt.

    Retried: network errors, timeouts, proxy failures other than authentication, handshake
    failures other than a status, 429 and 5xx answers. Not retried: ``InvalidURL``, TLS
    certificate errors, 407 (``ProxyAuthenticationRequired``), and any other status
    (4xx, an unfollowed 3xx).
    """
    if isinstance(exc, (InvalidURL, ProxyAuthenticationRequired)):
        return False
    if isinstance(exc, InvalidStatus):
        status = getattr(exc.response, "status", 0)
        return status == 429 or 500 <= status <= 599
    if isinstance(exc, TLSError):
        return not _is_certificate_error(exc)
    return isinstance(exc, ConnectFailed)


class Reconnect:
    """An iterable of connections to one URL, reopened with backoff (see :func:`reconnect`).

    Iterate it once. :meth:`stop` (from any thread, a signal handler included) ends the
    iteration: it interrupts a backoff sleep at once and closes the current connection with
    1001 (going away) on a helper thread, so a consumer blocked in ``for message in ws``
    sees the iteration end quietly.

    Attributes:
        attempts: openings tried so far (successful or not).
        connection: the connection last handed out (None before the first).
    """

    def __init__(
        self,
        connect: Callable[[], WebSocketConnection],
        *,
        description: str,
        backoff: Iterable[float] | None = None,
        retry: Callable[[BaseException], bool] | None = None,
        max_attempts: int | None = None,
        on_retry: Callable[[int, float, BaseException | None], object] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be a positive int or None, not {max_attempts!r}")
        if retry is not None and not callable(retry):
            raise TypeError("retry must be a callable taking the exception and returning a bool")
        self._connect = connect
        self._description = description
        self.backoff: Iterable[float] = backoff if backoff is not None else Backoff()
        self.retry = retry or default_retry
        self.max_attempts = max_attempts
        self._on_retry = on_retry
        self._on_stop = on_stop
        #: The thread that runs the iteration, for WebSocketClient.reconnect().
        self.thread: threading.Thread | None = None
        #: What ended a background iteration with an error (WebSocketClient.reconnect()).
        self.error: BaseException | None = None
        self._stop = threading.Event()
        # Guards _stopper. Reentrant: stop() may run in a signal handler that interrupted
        # this very thread while it held the lock.
        self._lock = threading.RLock()
        self.connection: WebSocketConnection | None = None
        self._stopper: threading.Thread | None = None
        self.attempts = 0
        self._iterated = False

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """End the iteration, from any thread or a signal handler; returns at once.

        A backoff sleep ends at once; an opening in progress is aborted and the open
        connection is closed with 1001, both on a helper thread: a signal handler runs on a
        thread that may itself be inside the connection (blocked in ``recv()``) or holding
        one of its locks, so it must not close anything itself.
        """
        self._stop.set()
        with self._lock:
            if self._stopper is not None:
                return
            stopper = threading.Thread(target=self._shut_down, name="wsclient-reconnect-stop", daemon=True)
            # Published only once started: the iterating thread joins it without the lock.
            stopper.start()
            self._stopper = stopper

    def _shut_down(self) -> None:
        if self._on_stop is not None:
            self._on_stop()
        conn = self.connection
        if conn is not None and conn.connected:
            _close_quietly(conn)

    def join(self, timeout: float | None = None) -> None:
        """Wait for what :meth:`stop` started (the close of the open connection) and, for
        ``WebSocketClient.reconnect()``, for the background thread to end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._stopper, self.thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _stable_after(self) -> float:
        maximum = getattr(self.backoff, "maximum", None)
        return float(maximum) if isinstance(maximum, (int, float)) else DEFAULT_STABLE_AFTER

    def __iter__(self) -> Iterator[WebSocketConnection]:
        if self._iterated:
            raise RuntimeError("a Reconnect object can be iterated only once")
        self._iterated = True
        return self._run()

    def _wait(self, attempt: int, delay: float, error: BaseException | None) -> bool:
        """Sleep ``delay`` unless stopped first; returns False when stopped."""
        if error is not None:
            logger.info(
                "attempt %d to open %s failed (%s); next attempt in %.2f s",
                attempt, self._description, error, delay,
            )
        else:
            logger.info("the connection to %s closed early; reconnecting in %.2f s", self._description, delay)
        if self._on_retry is not None:
            self._on_retry(attempt, delay, error)
        return not self._stop.wait(delay)

    def _run(self) -> Iterator[WebSocketConnection]:
        delays = iter(self.backoff)
        failures = 0
        pending_delay: float | None = None  # after an early close
        while not self._stop.is_set():
            if pending_delay is not None:
                if not self._wait(self.attempts, pending_delay, None):
                    return
                pending_delay = None
            self.attempts += 1
            logger.info("opening %s (attempt %d)", self._description, self.attempts)
            try:
                conn = self._connect()
            except ConnectFailed as exc:
                failures += 1
                if self._stop.is_set():
                    return
                if not self.retry(exc):
                    logger.info("not retrying %s after %s: %s", self._description, type(exc).__name__, exc)
                    raise
                if self.max_attempts is not None and failures >= self.max_attempts:
                    logger.info("giving up on %s after %d failed attempts", self._description, failures)
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise  # the delays ran out: as many attempts as the iterable allowed
                asked = retry_after(exc)
                if asked is not None and asked > delay:
                    delay = asked
                if not self._wait(self.attempts, delay, exc):
                    return
                continue
            opened = time.monotonic()
            failures = 0
            self.connection = conn
            # stop() sets the flag before its helper reads self.connection: one of the two
            # sees the other, and the connection is closed either way.
            if self._stop.is_set():
                _close_quietly(conn)
                return
            try:
                yield conn
            finally:
                # The consumer moved on (or left the loop): never leave its connection open.
                if conn.connected:
                    _close_quietly(conn)
                stopper = self._stopper
                if stopper is not None and stopper is not threading.current_thread():
                    stopper.join()
            if time.monotonic() - opened >= self._stable_after():
                delays = iter(self.backoff)
            else:
                pending_delay = next(delays, None)
                if pending_delay is None:
                    return


def _close_quietly(conn: WebSocketConnection) -> None:
    try:
        conn.close(1001)
    except Exception:  # the connection is going away either way
        logger.debug("closing %r failed", conn, exc_info=True)


def reconnect(
    url: str,
    *,
    backoff: Iterable[float] | None = None,
    retry: Callable[[BaseException], bool] | None = None,
    max_attempts: int | None = None,
    **connect_kwargs: Any,
) -> Reconnect:
    """Connections to ``url``, reopened with backoff: ``for ws in reconnect(url): ...``.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        backoff: the delays between attempts: a :class:`Backoff` (the default,
            ``Backoff(1.0, 2.0, 60.0)``) or any iterable of seconds (when it runs out, the
            last failure is raised).
        retry: ``retry(exception) -> bool``: whether to try again after a failed opening
            (default: :func:`wsclient.reconnect.default_retry`).
        max_attempts: give up after this many failed openings in a row, raising the last
            failure (None: never).
        **connect_kwargs: what :func:`wsclient.connect` takes.

    Raises (from the iteration):
        ConnectFailed: a failure ``retry`` refused, or the last one once ``max_attempts``
            is reached. ``ValueError``/``TypeError`` for bad arguments, at the first attempt.
    """
    from .api import _connect_with
    from .client import WebSocketClient
    from .exceptions import redact_url

    current: list[WebSocketClient] = []  # the client of the opening in progress

    def open_one() -> WebSocketConnection:
        return _connect_with(_remember, url, **connect_kwargs)

    def _remember(client: WebSocketClient) -> None:
        current[:] = [client]

    def abort_opening() -> None:
        for client in list(current):
            client.abort()

    return Reconnect(
        open_one,
        description=redact_url(str(url)),
        backoff=backoff,
        retry=retry,
        max_attempts=max_attempts,
        on_stop=abort_opening,
    )
