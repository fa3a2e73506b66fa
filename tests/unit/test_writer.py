"""The writer's bounded write of a library frame (pong, keepalive ping, close), with the
socket's answers scripted: a partial write that cannot be completed in time must not leave
the stream open for anything written after it."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from wsclient import _writer
from wsclient._writer import Writer


class _ScriptedSocket:
    """Answers send() with the scripted counts; records what was written and shut down."""

    def __init__(self, sends: list[int | type[BaseException]]) -> None:
        self.sends = sends
        self.written = b""
        self.shut = False

    def send(self, data: bytes, flags: int = 0) -> int:
        answer = self.sends.pop(0)
        if isinstance(answer, type):
            raise answer()
        self.written += data[:answer]
        return answer

    def sendall(self, data: bytes) -> None:
        self.written += bytes(data)

    def shutdown(self, how: int) -> None:
        self.shut = True


@pytest.fixture
def writability(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    answers: list[bool] = []
    monkeypatch.setattr(_writer, "wait_writable", lambda sock, timeout: answers.pop(0))
    return answers


def _write(sock: Any) -> bool:
    writer = Writer(sock, plain=True)
    with writer.lock:
        return writer.write_bounded(lambda: b"0123456789", time.monotonic() + 0.1, lambda: None)


@pytest.mark.skipif(not getattr(socket, "MSG_DONTWAIT", 0), reason="no MSG_DONTWAIT here")
def test_whole_frame_without_waiting(writability: list[bool]) -> None:
    sock = _ScriptedSocket([10])
    assert _write(sock) and sock.written == b"0123456789" and not sock.shut
    assert writability == []  # no poll() was needed


@pytest.mark.skipif(not getattr(socket, "MSG_DONTWAIT", 0), reason="no MSG_DONTWAIT here")
def test_no_room_and_none_in_time_writes_nothing(writability: list[bool]) -> None:
    writability.append(False)
    sock = _ScriptedSocket([BlockingIOError])
    assert not _write(sock)
    assert sock.written == b"" and not sock.shut


@pytest.mark.skipif(not getattr(socket, "MSG_DONTWAIT", 0), reason="no MSG_DONTWAIT here")
def test_partial_frame_completed_when_room_comes(writability: list[bool]) -> None:
    writability.append(True)
    sock = _ScriptedSocket([4])
    assert _write(sock) and sock.written == b"0123456789" and not sock.shut


@pytest.mark.skipif(not getattr(socket, "MSG_DONTWAIT", 0), reason="no MSG_DONTWAIT here")
def test_partial_frame_that_cannot_be_completed_shuts_the_socket(writability: list[bool]) -> None:
    writability.append(False)
    sock = _ScriptedSocket([4])
    assert not _write(sock)
    assert sock.written == b"0123" and sock.shut
