"""Suite-wide fixtures: a thread-leak check around every test."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str, found: bool, hint: str) -> None:
    """Skip outside CI, fail under CI, when a tool a test needs is missing."""
    if found:
        return
    message = f"{name} is not available ({hint})"
    if IN_CI:
        pytest.fail(message + ": .ci/run must install it")
    pytest.skip(message)


def require_executable(name: str, hint: str = "") -> str:
    path = shutil.which(name)
    require_tool(name, path is not None, hint or f"install {name}")
    assert path is not None
    return path


def _wsclient_threads() -> list[threading.Thread]:
    """wsclient's threads, less the shared timer (it lingers a moment after the last deadline
    and belongs to the process, not to a connection; tests/unit/test_timer.py checks it exits)."""
    return [
        t for t in threading.enumerate()
        if t.name.startswith("wsclient") and t.name != "wsclient-timer" and t.is_alive()
    ]


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Fail a test that leaves a wsclient thread running (readers get a short grace)."""
    before = set(_wsclient_threads())
    yield
    deadline = time.monotonic() + 2.0
    leaked = []
    while time.monotonic() < deadline:
        leaked = [t for t in _wsclient_threads() if t not in before]
        if not leaked:
            break
        time.sleep(0.02)
    leaked = [t for t in _wsclient_threads() if t not in before]
    assert not leaked, f"threads left running after the test: {[t.name for t in leaked]}"
