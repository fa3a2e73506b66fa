"""A user's script, type-checked with ``mypy --strict`` against the INSTALLED package.

``.ci/run`` copies it out of the repository and runs mypy on it in a fresh venv where the
wheel is installed: it proves that users get wsclient's types, not ``Any``. It is never
run, only checked (pytest does not collect it: no test_ prefix).
"""

from __future__ import annotations

from typing_extensions import assert_type  # typing.assert_type is 3.11+

import wsclient
from wsclient.handshake import Headers, Response


def requests_style(url: str) -> str | bytes:
    with wsclient.connect(url, subprotocols=["chat"], timeout=5.0, close_timeout=2.0) as ws:
        assert_type(ws, wsclient.WebSocketConnection)
        assert_type(ws.response, Response)
        assert_type(ws.response.status, int)
        assert_type(ws.response.headers, Headers)
        assert_type(ws.subprotocol, str | None)
        ws.send("hello")
        reply = ws.recv(timeout=5)
        assert_type(reply, str | bytes)
        return reply


def event_style(url: str) -> None:
    client = wsclient.WebSocketClient(max_received_message_size=16 << 20)

    @client.on("connect_failed")
    def failed(error: wsclient.ConnectFailed) -> None:
        print("could not connect:", error)

    conn = client.connect(url, ["chat"], wait=True)
    assert_type(conn, wsclient.WebSocketConnection)
    assert_type(client.connect(url), wsclient.WebSocketConnection)
    assert_type(client.connect(url, wait=False), None)
    conn.send_text("hi")
    conn.close(1000, "bye")


def errors(url: str) -> int:
    try:
        wsclient.connect(url).close()
    except wsclient.InvalidStatus as exc:
        return int(exc.response.status)
    except (wsclient.PayloadTooBig, wsclient.NegotiationError, wsclient.ConnectFailed):
        return -1
    return 0


assert_type(wsclient.__version__, str)
