"""A small listener registry: ``on`` / ``off`` / ``once``, with ``on`` usable as a decorator."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["EventEmitter"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("wsclient")


class EventEmitter:
    """Listeners by event name. Subclasses set ``EVENTS`` to the names they emit."""

    EVENTS: frozenset[str] = frozenset()
    # Slots here too, or a subclass with slots would still carry a __dict__.
    __slots__ = ("_listeners", "_listeners_lock")

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._listeners_lock = threading.Lock()

    def _check(self, event: str) -> None:
        if event not in self.EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {sorted(self.EVENTS)}")

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, callback: F) -> F: ...

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; without a callback, return a decorator."""
        self._check(event)
        if callback is None:
            def decorator(fn: F) -> F:
                self.on(event, fn)
                return fn
            return decorator
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._listeners_lock:
            # Copy-on-write: dispatch iterates the old list without a lock.
            self._listeners[event] = [*self._listeners.get(event, ()), callback]
        self._listeners_changed(event)
        return callback

    def once(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Like :meth:`on`, but the listener is removed after its first call."""
        self._check(event)
        if callback is None:
            def decorator(fn: F) -> F:
                self.once(event, fn)
                return fn
            return decorator

        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return callback(*args)

        wrapper.__wrapped__ = callback  # type: ignore[attr-defined]
        return self.on(event, wrapper)

    def off(self, event: str, callback: Callable[..., Any]) -> None:
        """Remove ``callback`` (also one registered with :meth:`once`); unknown ones are ignored."""
        self._check(event)
        with self._listeners_lock:
            current = self._listeners.get(event, [])
            kept = [c for c in current if c is not callback and getattr(c, "__wrapped__", None) is not callback]
            if len(kept) == len(current):
                return
            if kept:
                self._listeners[event] = kept
            else:
                self._listeners.pop(event, None)
        self._listeners_changed(event)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        return list(self._listeners.get(event, ()))

    def _listeners_changed(self, event: str) -> None:
        """Hook for subclasses that cache whether an event has listeners."""

    def _emit(self, event: str, *args: Any) -> bool:
        """Call the listeners of ``event``; returns whether there were any.

        A listener that raises is reported on ``error`` (never re-raised here).
        """
        callbacks = self._listeners.get(event)
        if not callbacks:
            return False
        for callback in callbacks:
            try:
                callback(*args)
            except Exception as exc:
                if event == "error":
                    logger.exception("an 'error' listener raised")
                else:
                    self._listener_failed(event, exc)
        return True

    def _listener_failed(self, event: str, exc: Exception) -> None:
        if not self._emit("error", exc):
            logger.error("a %r listener raised %r", event, exc, exc_info=exc)
