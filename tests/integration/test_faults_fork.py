"""fork() with the timer thread alive: the child's keepalive and close timeout work, the
connection inherited from the parent is unusable there and closing it does not disturb
the parent's connection."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest
from rawserver import Op, serve_until_close, wait

import wsclient

SLACK = 1.5

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child(parent_ws: Any, silent_url: str, silent_url2: str, write_fd: int) -> None:
    """Runs in the fork child; reports what it saw as JSON on ``write_fd``."""
    report: dict[str, Any] = {}
    try:
        try:
            parent_ws.send("from the child")
            report["inherited_send"] = "no error"
        except wsclient.ConnectionClosed as exc:
            report["inherited_send"] = type(exc).__name__
        start = time.monotonic()
        parent_ws.close()
        parent_ws.drop()
        report["inherited_close_s"] = time.monotonic() - start
        # A new connection in the child to a server that never answers pings: the child's
        # own timer thread must fail it (keepalive)...
        ws = wsclient.connect(silent_url, ping_interval=0.3, ping_timeout=0.3, close_timeout=1.0)
        start = time.monotonic()
        try:
            while time.monotonic() - start < 10:
                ws.recv(timeout=10)
        except wsclient.ConnectionClosed as exc:
            report["keepalive_code"] = exc.code
        report["keepalive_s"] = time.monotonic() - start
        # ...and bound a close that the server never answers.
        ws2 = wsclient.connect(silent_url2, ping_interval=None, close_timeout=1.0)
        ws2.pause()  # start its reader thread: the close then relies on the timer/join bound
        ws2.resume()
        start = time.monotonic()
        ws2.close()
        report["close_s"] = time.monotonic() - start
        report["close_code"] = ws2.close_code
        report["timer_threads"] = [t.name for t in threading.enumerate() if t.name == "wsclient-timer"]
    except BaseException as exc:  # reported to the parent
        report["error"] = repr(exc)
    finally:
        os.write(write_fd, json.dumps(report).encode())
        os._exit(0)


def test_fork_with_the_timer_thread_alive(raw_server: Any) -> None:
    release = threading.Event()
    parent_server = raw_server([serve_until_close(echo=True, timeout=30)])
    # Never answer anything (no pong, no close echo) until released.
    silent = raw_server([wait(release, 30)])
    silent2 = raw_server([wait(release, 30)])
    try:
        ws = wsclient.connect(parent_server.url(), ping_interval=0.5, ping_timeout=5, close_timeout=2.0)
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        assert any(t.name == "wsclient-timer" for t in threading.enumerate())
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            _child(ws, silent.url(), silent2.url(), write_fd)
        os.close(write_fd)
        chunks = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        report = json.loads(b"".join(chunks) or b"{}")
        assert "error" not in report, report
        assert report["inherited_send"] in ("ConnectionClosedError", "ConnectionClosedOK")
        assert report["inherited_close_s"] < SLACK
        assert report["keepalive_code"] == 1011
        assert report["keepalive_s"] < 0.3 + 0.3 + SLACK
        assert report["close_s"] < 1.0 + SLACK
        assert report["close_code"] == 1006
        # The parent's connection is unharmed: no close frame, no shutdown from the child.
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
        assert ws.connected
        ws.close()
        assert ws.close_code == 1000
        closes = [f for f in parent_server.connection.frames if f.opcode == Op.CLOSE]
        assert len(closes) == 1 and closes[0].close_code == 1000
    finally:
        release.set()
    parent_server.join()
