"""Bad input (issue 2): each gives the specific exception of the documented error tree, or the right
close code on a live connection, never a hang, a reader traceback or a leaked thread.

Most peers here are scripted raw-socket servers (``rawserver.py``): they send what no real
server sends, and record what the client answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from rawserver import (
    Op,
    build_frame,
    close,
    close_payload,
    echo_close,
    expect_close,
    expect_frame,
    finish_within,
    read_request,
    send,
    send_close,
    send_frame,
    serve_until_close,
    signal,
    sleep,
    stream_oversized_head,
    wait,
    wait_eof,
)
from rawserver import (
    abort as reset,
)

import wsclient
from wsclient import (
    ConnectFailed,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeError,
    InvalidURL,
    TLSError,
)


@pytest.fixture(autouse=True)
def no_error_logs_from_wsclient(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A peer's bad input is an expected event: wsclient must not log it as an error
    (an uncaught exception in the reader thread fails the test through pytest's
    ``PytestUnhandledThreadExceptionWarning`` filter in pyproject.toml)."""
    caplog.set_level(logging.DEBUG, logger="wsclient")
    yield
    errors = [r for r in caplog.records if r.name.startswith("wsclient") and r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


# --------------------------------------------------------------------------- opening failures


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1/",
        "ftp://127.0.0.1/",
        "127.0.0.1:80",
        "ws://",
        "ws:///path",
        "ws://127.0.0.1:99999/",
        "ws://127.0.0.1:port/",
        "",
    ],
)
def test_bad_url_raises_invalid_url(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        wsclient.connect(url, timeout=2)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ConnectFailed)


def test_bad_url_with_client_reports_connect_failed() -> None:
    """The documented contract: connect(wait=False) returns None at once and the events report the end;
    connect(wait=True) raises the ConnectFailed and the events fire too."""
    client = wsclient.WebSocketClient()
    failures: list[BaseException] = []
    client.on("connect_failed", failures.append)
    assert client.connect("http://127.0.0.1/", wait=False) is None
    assert len(failures) == 1 and isinstance(failures[0], InvalidURL)
    with pytest.raises(InvalidURL):
        client.connect("ftp://127.0.0.1/")
    assert len(failures) == 2 and isinstance(failures[1], InvalidURL)


def test_refused_port_raises_connect_failed(refused_port: int) -> None:
    with pytest.raises(ConnectFailed) as info:
        wsclient.connect(f"ws://127.0.0.1:{refused_port}/", timeout=5)
    assert not isinstance(info.value, (TLSError, HandshakeError, ConnectTimeout))
    assert info.value.__cause__ is not None


def test_refused_port_wss(refused_port: int, ca_path: str) -> None:
    with pytest.raises(ConnectFailed):
        wsclient.connect(f"wss://127.0.0.1:{refused_port}/", verify=ca_path, timeout=5)


def test_untrusted_ca_raises_tls_error(websockets_tls_server: Any, other_ca_path: str) -> None:
    with pytest.raises(TLSError) as info:
        wsclient.connect(websockets_tls_server.url("/echo"), verify=other_ca_path, timeout=5)
    assert info.value.__cause__ is not None


def test_default_roots_do_not_trust_test_ca(node_tls_server: Any) -> None:
    with pytest.raises(TLSError):
        wsclient.connect(node_tls_server.url("/echo"), timeout=5)


def test_wrong_hostname_raises_tls_error(websockets_server_factory: Any, wrong_host_tls: Any) -> None:
    server = websockets_server_factory(tls=wrong_host_tls)
    with pytest.raises(TLSError) as info:
        wsclient.connect(server.url("/echo"), verify=wrong_host_tls.ca_path, timeout=5)
    assert "mismatch" in str(info.value).lower() or "hostname" in str(info.value).lower()
    assert info.value.__cause__ is not None


def test_tls_to_a_plain_server_raises_tls_error(websockets_server: Any, ca_path: str) -> None:
    url = websockets_server.url("/echo").replace("ws://", "wss://")
    with pytest.raises(TLSError):
        wsclient.connect(url, verify=ca_path, timeout=5)


def test_silent_server_raises_connect_timeout(raw_server: Any) -> None:
    """TCP connects, the request is read, no answer comes: ConnectTimeout (a TimeoutError)."""
    server = raw_server([read_request(), wait_eof(10)], handshake=False)
    with pytest.raises(ConnectTimeout) as info:
        finish_within(lambda: wsclient.connect(server.url(), timeout=0.5))
    assert isinstance(info.value, TimeoutError)
    server.join()


def test_half_answer_raises_connect_timeout(raw_server: Any) -> None:
    """A status line and no end of the head: the timeout bounds the whole handshake."""
    server = raw_server(
        [read_request(), send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"), wait_eof(10)],
        handshake=False,
    )
    with pytest.raises(ConnectTimeout):
        finish_within(lambda: wsclient.connect(server.url(), timeout=0.5))
    server.join()


def test_tls_handshake_timeout(raw_server: Any, ca_path: str) -> None:
    """A TCP server that never speaks TLS: ConnectTimeout, not a hang."""
    server = raw_server([wait_eof(10)], handshake=False)
    with pytest.raises(ConnectTimeout):
        finish_within(lambda: wsclient.connect(server.url(scheme="wss"), verify=ca_path, timeout=0.5))
    server.join()


def test_wrong_accept_raises_handshake_error(raw_server: Any) -> None:
    server = raw_server([wait_eof(required=False)], accept="dGhlIHNhbXBsZSBub25jZQ==")
    with pytest.raises(HandshakeError) as info:
        wsclient.connect(server.url(), timeout=5)
    assert "accept" in str(info.value).lower()
    server.join()


def test_missing_upgrade_header_raises_handshake_error(raw_server: Any) -> None:
    def answer(conn: Any) -> bytes:
        from rawserver import accept_key

        key = conn.request_headers["sec-websocket-key"]
        return (
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode()

    server = raw_server([wait_eof(required=False)], response=answer)
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url(), timeout=5)
    server.join()


@pytest.mark.parametrize("offered", [None, ["chat"]])
def test_unoffered_subprotocol_raises_handshake_error(raw_server: Any, offered: list[str] | None) -> None:
    server = raw_server([wait_eof(required=False)], extra_headers=[("Sec-WebSocket-Protocol", "other")])
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url(), subprotocols=offered, timeout=5)
    server.join()


@pytest.mark.parametrize(
    ("compression", "answer"),
    [("deflate", "x-custom-extension"), (None, "permessage-deflate")],
)
def test_unrequested_extension_raises_handshake_error(raw_server: Any, compression: Any, answer: str) -> None:
    server = raw_server([wait_eof(required=False)], extra_headers=[("Sec-WebSocket-Extensions", answer)])
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url(), compression=compression, timeout=5)
    server.join()


def test_oversized_response_head_raises_handshake_error(raw_server: Any) -> None:
    server = raw_server([stream_oversized_head()], handshake=False)
    with pytest.raises(HandshakeError) as info:
        finish_within(lambda: wsclient.connect(server.url(), timeout=30))
    assert not isinstance(info.value, ConnectTimeout)
    server.join(30)
    assert server.connection.notes and "gave up" in server.connection.notes[0]


def test_garbage_answer_raises_handshake_error(raw_server: Any) -> None:
    server = raw_server([wait_eof(required=False)], response=b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url(), timeout=5)
    server.join()


def test_server_closes_during_handshake(raw_server: Any) -> None:
    server = raw_server([read_request()], handshake=False)
    with pytest.raises(ConnectFailed) as info:
        finish_within(lambda: wsclient.connect(server.url(), timeout=5))
    assert not isinstance(info.value, ConnectTimeout)
    server.join()


# --------------------------------------------------------------------------- the first bytes


def test_frame_in_the_same_packet_as_the_101_is_the_first_message(raw_server: Any) -> None:
    server = raw_server(
        [
            send_frame(Op.TEXT, "second"),
            expect_frame(Op.TEXT, b"reply"),
            send_close(1000),
            expect_close(1000),
        ],
        trailing=build_frame(Op.TEXT, "first") + build_frame(Op.BINARY, b"\x00also first"),
    )
    with wsclient.connect(server.url(), timeout=5) as ws:
        assert ws.recv(timeout=5) == "first"
        assert ws.recv(timeout=5) == b"\x00also first"
        assert ws.recv(timeout=5) == "second"
        ws.send("reply")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    server.join()
    assert ws.close_code == 1000


def test_first_message_reaches_listener_added_in_connect_event(raw_server: Any) -> None:
    server = raw_server([serve_until_close()], trailing=build_frame(Op.TEXT, "glued"))
    client = wsclient.WebSocketClient(close_timeout=2)
    got: list[Any] = []
    arrived = threading.Event()

    def on_message(data: Any) -> None:
        got.append(data)
        arrived.set()

    client.on("connect", lambda conn: conn.on("message", on_message))
    ws = client.connect(server.url(), request_options={"timeout": 5})
    assert ws is not None
    with ws:
        assert arrived.wait(5)
    assert got == ["glued"]
    server.join()


def test_recv_timeout_on_silent_open_connection(raw_server: Any) -> None:
    server = raw_server([serve_until_close(timeout=10)])
    with wsclient.connect(server.url(), timeout=5, close_timeout=2) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        assert ws.connected  # a recv timeout does not close the connection
    server.join()
    assert server.connection.close_code == 1000


# --------------------------------------------------------------------------- closing


def test_peer_that_never_answers_the_close(raw_server: Any) -> None:
    """close() returns after close_timeout with 1006; nothing hangs."""
    server = raw_server([expect_close(1000), wait_eof(10)])
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=0.3)
    closes: list[tuple[int, str]] = []
    ws.on("close", lambda code, reason: closes.append((code, reason)))
    finish_within(ws.close, 10)
    assert not ws.connected
    assert ws.close_code == 1006
    assert [c for c, _ in closes] == [1006]
    server.join()  # the client closed TCP in the end


def test_with_block_exit_is_bounded_by_close_timeout(raw_server: Any) -> None:
    server = raw_server([expect_close(), wait_eof(10)])

    def use() -> None:
        with wsclient.connect(server.url(), timeout=5, close_timeout=0.3):
            pass

    finish_within(use, 10)
    server.join()


def test_peer_answers_close_but_keeps_tcp_open(raw_server: Any) -> None:
    server = raw_server([expect_close(1000), echo_close(), wait_eof(10)])
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=0.3)
    finish_within(ws.close, 10)
    assert ws.close_code == 1000  # the closing handshake completed
    server.join()


def test_server_initiated_close_is_echoed(raw_server: Any) -> None:
    server = raw_server([send_close(4321, "server reasons"), expect_close(4321)])
    ws = wsclient.connect(server.url(), timeout=5)
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (4321, "server reasons")
    finish_within(ws.close)
    server.join()


def test_concurrent_close_calls_wait_for_the_first(raw_server: Any) -> None:
    release = threading.Event()
    server = raw_server([expect_close(1000), wait(release), echo_close()])
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=5)
    results: list[Any] = []

    def closer() -> None:
        ws.close()
        results.append(ws.close_code)

    threads = [threading.Thread(target=closer, name=f"test-closer-{i}") for i in range(3)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert results == [1000, 1000, 1000]
    server.join()
    assert len(server.connection.close_frames) == 1


# --------------------------------------------------------------------------- malformed frames


def _expect_failure(server: Any, code: int, **connect_kwargs: Any) -> ConnectionClosedError:
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=2, **connect_kwargs)
    with pytest.raises(ConnectionClosedError) as info:
        finish_within(lambda: ws.recv(timeout=5))
    finish_within(ws.close)
    server.join()
    assert server.connection.close_code == code
    assert not ws.connected
    assert ws.close_code == code
    return info.value


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("masked server frame", build_frame(Op.TEXT, "masked", mask=True)),
        ("reserved opcode 3", build_frame(Op.RESERVED_3, b"x")),
        ("reserved opcode 0xB", build_frame(Op.RESERVED_B, b"x")),
        ("control frame over 125 bytes", build_frame(Op.PING, b"p" * 126)),
        ("fragmented control frame", build_frame(Op.PING, b"p", fin=False)),
        ("rsv2 without extension", build_frame(Op.TEXT, "x", rsv2=True)),
        ("rsv1 without extension", build_frame(Op.TEXT, "x", rsv1=True)),
        ("continuation without start", build_frame(Op.CONT, b"orphan")),
        ("close code 1005 on the wire", build_frame(Op.CLOSE, close_payload(1005))),
        ("close code 999", build_frame(Op.CLOSE, close_payload(999))),
        ("one-byte close payload", build_frame(Op.CLOSE, b"\x03")),
    ],
)
def test_protocol_violation_closes_with_1002(raw_server: Any, name: str, frame: bytes) -> None:
    server = raw_server([send(frame), expect_close(1002), echo_close()])
    error = _expect_failure(server, 1002)
    assert error.code == 1002


def test_new_data_frame_inside_fragmented_message_closes_with_1002(raw_server: Any) -> None:
    server = raw_server(
        [
            send_frame(Op.TEXT, "part 1", fin=False),
            send_frame(Op.TEXT, "intruder"),
            expect_close(1002),
            echo_close(),
        ]
    )
    _expect_failure(server, 1002)


def test_invalid_utf8_text_closes_with_1007(raw_server: Any) -> None:
    server = raw_server([send_frame(Op.TEXT, b"valid then \xff\xfe"), expect_close(1007), echo_close()])
    _expect_failure(server, 1007)


def test_invalid_utf8_in_close_reason_closes_with_1007(raw_server: Any) -> None:
    server = raw_server(
        [send_frame(Op.CLOSE, close_payload(1000, b"\xff")), expect_close(1007), echo_close()]
    )
    _expect_failure(server, 1007)


def test_fragmented_invalid_utf8_fails_fast(raw_server: Any) -> None:
    """Bad UTF-8 in the first fragment: the client closes 1007 before the last one is sent."""
    server = raw_server(
        [
            send_frame(Op.TEXT, b"hello \xc0 world", fin=False),
            expect_close(1007),  # only then would the rest come
            echo_close(),
        ]
    )
    _expect_failure(server, 1007)


def test_utf8_split_across_fragments_is_fine(raw_server: Any) -> None:
    euro = "€".encode()
    server = raw_server(
        [
            send_frame(Op.TEXT, b"price: 5" + euro[:1], fin=False),
            send_frame(Op.CONT, euro[1:2], fin=False),
            send_frame(Op.CONT, euro[2:] + b"!", fin=True),
            serve_until_close(),
        ]
    )
    with wsclient.connect(server.url(), timeout=5) as ws:
        assert ws.recv(timeout=5) == "price: 5€!"
    server.join()


def test_oversized_frame_header_closes_with_1009_before_the_payload(raw_server: Any) -> None:
    """A header announcing 2 MiB past a 1 MiB limit: 1009 before any payload is sent."""
    server = raw_server([send(build_frame(Op.BINARY, b"", length=2 << 20)), expect_close(1009), echo_close()])
    error = _expect_failure(server, 1009)
    assert error.code == 1009


def test_oversized_message_closes_with_1009(raw_server: Any) -> None:
    """Fragments each under the frame limit whose sum passes max_received_message_size."""
    server = raw_server(
        [
            send_frame(Op.BINARY, b"a" * 600, fin=False),
            send_frame(Op.CONT, b"b" * 600, fin=False),
            expect_close(1009),
            echo_close(),
        ]
    )
    _expect_failure(server, 1009, max_received_frame_size=1024, max_received_message_size=1000)


def test_huge_declared_length_closes_with_1009(raw_server: Any) -> None:
    server = raw_server([send(build_frame(Op.TEXT, b"", length=1 << 62)), expect_close(1009), echo_close()])
    _expect_failure(server, 1009)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_peer_vanishes_mid_message(raw_server: Any, how: str) -> None:
    ready = threading.Event()
    server = raw_server(
        [
            wait(ready),
            send_frame(Op.TEXT, "the first half of", fin=False),
            close() if how == "fin" else reset(),
        ]
    )
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=2)
    closes: list[int] = []
    ws.on("close", lambda code, reason: closes.append(code))
    ready.set()
    with pytest.raises(ConnectionClosedError) as info:
        finish_within(lambda: ws.recv(timeout=5))
    assert info.value.code == 1006
    finish_within(ws.close)
    assert ws.close_code == 1006
    assert closes == [1006]
    server.join()


def test_peer_vanishes_while_iterating(raw_server: Any) -> None:
    server = raw_server([send_frame(Op.TEXT, "one"), send_frame(Op.TEXT, "two"), sleep(0.05), close()])
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=2)
    got: list[Any] = []

    def consume() -> None:
        for message in ws:
            got.append(message)

    with pytest.raises(ConnectionClosedError) as info:
        finish_within(consume)
    assert got == ["one", "two"]
    assert info.value.code == 1006
    finish_within(ws.close)
    server.join()


def test_send_after_peer_vanished_raises_connection_closed(raw_server: Any) -> None:
    ready, gone = threading.Event(), threading.Event()
    server = raw_server([wait(ready), close(), signal(gone)])
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=1)
    closed = threading.Event()
    ws.on("close", lambda code, reason: closed.set())
    ready.set()
    assert gone.wait(5)
    assert closed.wait(5)
    with pytest.raises(ConnectionClosed):
        ws.send("anyone?")
    finish_within(ws.close)
    server.join()


def test_outgoing_fragmentation_on_the_wire(raw_server: Any) -> None:
    """A 40 000-byte message with the default 16 KiB threshold: 3 masked frames."""
    payload = bytes(range(256)) * 156 + b"tail"  # 39 940 bytes

    def check_frames(conn: Any) -> None:
        frames = [conn.read_frame() for _ in range(3)]
        assert all(f is not None and f.masked for f in frames)
        assert [f.opcode for f in frames] == [Op.BINARY, Op.CONT, Op.CONT]  # type: ignore[union-attr]
        assert [f.fin for f in frames] == [False, False, True]  # type: ignore[union-attr]
        assert [len(f.payload) for f in frames] == [16384, 16384, len(payload) - 32768]  # type: ignore[union-attr]
        assert b"".join(f.payload for f in frames) == payload  # type: ignore[union-attr]

    server = raw_server([check_frames, serve_until_close()])
    with wsclient.connect(server.url(), timeout=5, compression=None) as ws:
        ws.send(payload)
    server.join()


def test_fragmentation_can_be_turned_off(raw_server: Any) -> None:
    payload = b"z" * 40000
    server = raw_server([expect_frame(Op.BINARY, payload), serve_until_close()])
    with wsclient.connect(server.url(), timeout=5, compression=None, fragment_outgoing_messages=False) as ws:
        ws.send(payload)
    server.join()
    assert server.connection.frames[0].fin


def test_send_frame_drives_fragmentation(raw_server: Any) -> None:
    server = raw_server(
        [
            expect_frame(Op.TEXT, b"he"),
            expect_frame(Op.CONT, b"llo"),
            serve_until_close(),
        ]
    )
    with wsclient.connect(server.url(), timeout=5, compression=None) as ws:
        ws.send_frame(wsclient.Frame(wsclient.Opcode.TEXT, b"he", fin=False))
        ws.send_frame(wsclient.Frame(wsclient.Opcode.CONTINUATION, b"llo", fin=True))
        with pytest.raises(ValueError):
            ws.send_frame(wsclient.Frame(wsclient.Opcode.PING, b"x" * 126))
        with pytest.raises(ValueError):
            ws.send_frame(wsclient.Frame(wsclient.Opcode.PING, b"x", fin=False))
    server.join()
    assert [f.fin for f in server.connection.frames[:2]] == [False, True]
