"""Keepalive: a connection's pings and their deadlines, driven by the shared timer thread.

:class:`Keepalive` pings every ``ping_interval`` and fails the connection (1011) when a
ping is not answered within ``ping_timeout``, or when nothing could be written and no pong
came for ``ping_interval + ping_timeout`` (a write blocked on a peer that stopped reading).
It runs on the timer thread (:mod:`wsclient._timer`) and never waits there: its ping is
written only if the socket takes it at once.

The sign of life it reads, ``WebSocketConnection._alive_at``, is stamped by the connection
(every completed write, every pong): the send fast path stamps it inline.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from .protocol import State

if TYPE_CHECKING:
    from .connection import WebSocketConnection

__all__ = ["Keepalive"]

logger = logging.getLogger("wsclient.connection")

# How often keepalive looks again while a blocked write keeps it from sending its ping.
_STALL_POLL = 0.25


class Keepalive:
    """One connection's keepalive; the object is itself the timer's callback (no bound
    method allocated per round).

    Args:
        conn: the connection it pings and, when the peer stops answering, fails; its
            config's ``ping_interval`` (not None) and ``ping_timeout`` apply.
        first_ping: when the first ping is due (``time.monotonic()``).
    """

    __slots__ = ("_conn", "_next_ping", "_ping_payload", "_ping_sent")

    def __init__(self, conn: WebSocketConnection, first_ping: float) -> None:
        self._conn = conn
        # The timer thread writes these, the reader thread clears _ping_payload when the
        # pong arrives: plain stores, no lock needed.
        self._ping_payload: bytes | None = None  # the unanswered ping's payload
        self._ping_sent = 0.0
        self._next_ping = first_ping

    def pong(self, data: bytes) -> None:
        """Reader thread: a pong arrived (the connection stamped it as a sign of life)."""
        if data == self._ping_payload:
            self._ping_payload = None

    def __call__(self) -> None:
        """Timer thread: ping if one is due, fail the connection if the peer gave no sign
        of life in time, then schedule the next look. Never waits."""
        conn = self._conn
        proto = conn._protocol
        if conn._finished or conn._aborted or proto.state is not State.OPEN:
            return
        interval = conn._config.ping_interval
        timeout = conn._config.ping_timeout
        assert interval is not None
        now = time.monotonic()
        stalled = False
        if self._ping_payload is not None:
            if timeout is not None and now - self._ping_sent >= timeout:
                return self._failed("keepalive ping timeout")
        elif now >= self._next_ping:
            payload = os.urandom(4)
            self._ping_payload = payload  # before writing: the pong may come back at once
            if conn._write_control(lambda: proto.encode_ping(payload), 0):
                self._ping_sent = now
                self._next_ping = now + interval
            else:
                self._ping_payload = None
                stalled = True
                if timeout is not None and now - conn._alive_at >= interval + timeout:
                    return self._failed("keepalive: nothing written for ping_interval + ping_timeout")
        wake = self._next_ping
        if self._ping_payload is not None and timeout is not None:
            wake = min(wake, self._ping_sent + timeout)
        if stalled:
            wake = min(wake, now + min(_STALL_POLL, interval))
        conn._schedule(max(0.001, wake - now), self)

    def _failed(self, reason: str) -> None:
        logger.info("%s: failing the connection (1011)", reason)
        conn = self._conn
        conn._abort(1011, reason)
        conn._ensure_reader(force=True)  # the reader thread finishes the connection
