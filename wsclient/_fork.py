"""Fork handling: a fork child lets go of the connections it inherited from its parent.

Every connection registers here (:func:`track`, a weak set: never keeps one alive). In a
fork child, each is told it was inherited (``WebSocketConnection._inherited_by_child``):
it becomes unusable there and closes only the child's copy of its descriptor
(:func:`raw_socket`), so the parent's connection carries on undisturbed.
"""

from __future__ import annotations

import logging
import os
import socket
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import WebSocketConnection

__all__ = ["raw_socket", "track"]

logger = logging.getLogger("wsclient.connection")

# Connections of this process, for the fork handler (weak: never keeps one alive).
_live: weakref.WeakSet[WebSocketConnection] = weakref.WeakSet()


def track(conn: WebSocketConnection) -> None:
    """Detach ``conn`` in any fork child of this process."""
    _live.add(conn)


def raw_socket(sock: Any) -> Any:
    """The OS-level socket under a TLS or proxy stream wrapper (for the fork child)."""
    while not isinstance(sock, socket.socket):
        inner = getattr(sock, "_sock", None)
        if inner is None:
            break
        sock = inner
    return sock


def _after_fork_in_child() -> None:
    for conn in list(_live):
        try:
            conn._inherited_by_child()
        except Exception:  # never break the child's start
            logger.exception("could not detach an inherited connection")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
