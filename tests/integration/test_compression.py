"""permessage-deflate (RFC 7692) against real servers and a scripted one.

The real servers are the ``websockets`` package's and Node's ``ws`` (both with compression
on). Between client and server sits :class:`FrameSniffer`, a loopback relay that parses the
frames going each way, so the tests see on the wire that messages were compressed (RSV1 on the
first frame only, smaller payloads), not just that they came back intact.

The scripted server (``rawserver``) covers what no real server sends: bad negotiation answers,
RSV1 where it must not be, corrupt deflate data and a decompression bomb.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rawserver import (
    Op,
    build_frame,
    echo_close,
    expect_close,
    expect_frame,
    send_frame,
    serve_until_close,
    wait_eof,
)

import wsclient
from wsclient.exceptions import ConnectionClosed, HandshakeError
from wsclient.extensions import DeflateOptions

TAIL = b"\x00\x00\xff\xff"


# --------------------------------------------------------------------------- the sniffer


@dataclass(frozen=True)
class WireFrame:
    """A frame as seen on the wire (payload still compressed, unmasked)."""

    opcode: int
    fin: bool
    rsv1: bool
    payload: bytes


class _FrameParser:
    """Incremental parser of one direction: the HTTP head first, then frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head: bytes | None = None
        self.frames: list[WireFrame] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(self.buffer[: end + 4])
            del self.buffer[: end + 4]
        while True:
            buf = self.buffer
            if len(buf) < 2:
                return
            first, second = buf[0], buf[1]
            length, pos = second & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                (length,) = struct.unpack_from("!H", buf, 2)
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buf, 2)
                pos = 10
            key = b""
            if second & 0x80:
                if len(buf) < pos + 4:
                    return
                key = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            del buf[: pos + length]
            if key:
                mask = (key * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(
                    length, "big"
                )
            self.frames.append(WireFrame(first & 0x0F, bool(first & 0x80), bool(first & 0x40), payload))


class FrameSniffer:
    """A loopback TCP relay to ``(host, port)`` that records the frames of each direction.

    ``sent`` holds what the client sent, ``received`` what the server sent, for the last
    connection relayed. Plain ``ws://`` only (it cannot read TLS).
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.client_side = _FrameParser()
        self.server_side = _FrameParser()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="sniffer", daemon=True)
        self._accepter.start()

    @property
    def sent(self) -> list[WireFrame]:
        return self.client_side.frames

    @property
    def received(self) -> list[WireFrame]:
        return self.server_side.frames

    def url(self, server_url: str) -> str:
        """``server_url`` pointed at the relay instead."""
        rest = server_url.split("://", 1)[1].split("/", 1)[1]
        return f"ws://127.0.0.1:{self.port}/{rest}"

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.upstream)
        self._sockets += [client, server]
        for src, dst, parser in ((client, server, self.client_side), (server, client, self.server_side)):
            thread = threading.Thread(target=self._pump, args=(src, dst, parser), daemon=True)
            thread.start()
            self._threads.append(thread)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, parser: _FrameParser) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                parser.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def join(self) -> None:
        """Wait until both directions are finished (after the client closed)."""
        for thread in self._threads:
            thread.join(10)

    def stop(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)


def messages_of(frames: list[WireFrame]) -> list[list[WireFrame]]:
    """Group data frames into messages (control frames dropped)."""
    messages: list[list[WireFrame]] = []
    current: list[WireFrame] = []
    for frame in frames:
        if frame.opcode >= 8:
            continue
        current.append(frame)
        if frame.fin:
            messages.append(current)
            current = []
    return messages


def inflate(frames: list[WireFrame], inflater: Any) -> bytes:
    """What a peer's inflater makes of one message's frames."""
    data = b"".join(f.payload for f in frames)
    return bytes(inflater.decompress(data + TAIL))


@pytest.fixture
def sniffer_factory() -> Any:
    started: list[FrameSniffer] = []

    def factory(host: str, port: int) -> FrameSniffer:
        sniffer = FrameSniffer(host, port)
        started.append(sniffer)
        return sniffer

    yield factory
    for sniffer in started:
        sniffer.stop()


# --------------------------------------------------------------------------- data


def json_text(n: int, seed: int) -> str:
    """Repetitive JSON, the kind of traffic compression is for."""
    rnd = random.Random(seed)
    items = []
    size = 0
    while size < n:
        item = json.dumps(
            {
                "id": rnd.randrange(10_000),
                "symbol": rnd.choice(["BTC", "ETH"]),
                "price": f"{rnd.uniform(1, 1000):.2f}",
                "side": rnd.choice("bs"),
            }
        )
        items.append(item)
        size += len(item) + 1
    return "[" + ",".join(items) + "]"


def messages_to_send() -> list[str | bytes]:
    """Small, medium, repeated, large (fragmented) and incompressible messages."""
    medium = json_text(5000, 1)
    return [
        "",
        "hi",
        b"\x00\x01",
        medium,
        medium,
        medium,
        json_text(3000, 2).encode(),
        json_text(200_000, 3),  # past fragmentation_threshold: several frames
        os.urandom(3000),
        "é" * 40,  # 80 bytes of UTF-8
    ]


# --------------------------------------------------------------------------- servers


def websockets_deflate_server(factory: Callable[..., Any], mode: str) -> Any:
    """A websockets server with compression; ``mode`` "server-forbids-takeover" adds
    server_no_context_takeover and client_no_context_takeover to every answer unasked."""
    if mode == "server-forbids-takeover":
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

        return factory(
            compression=None,
            extensions=[
                ServerPerMessageDeflateFactory(
                    server_no_context_takeover=True, client_no_context_takeover=True
                )
            ],
        )
    return factory(compression="deflate")


CLIENT_OPTIONS = {
    "default": DeflateOptions(),
    "no-takeover": DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
    "small-windows": DeflateOptions(server_max_window_bits=9, client_max_window_bits=10),
    "window-8": DeflateOptions(server_max_window_bits=9, client_max_window_bits=8, min_size=0),
}


def check_exchange(ws: Any, sniffer: FrameSniffer, min_size: int) -> None:
    """Send every message, check the echo, then check the frames on the wire."""
    sent = messages_to_send()
    for message in sent:
        ws.send(message)
        assert ws.recv(timeout=10) == message
    ws.close()
    sniffer.join()

    params = dict(ws.extensions)["permessage-deflate"]
    out = messages_of(sniffer.sent)
    back = messages_of(sniffer.received)
    assert len(out) == len(sent) == len(back)

    # Our frames: RSV1 on the first frame only, for each message at least min_size long.
    peer_wbits = params["client_max_window_bits"]
    peer = zlib.decompressobj(-int(peer_wbits))
    for message, frames in zip(sent, out, strict=True):
        raw = message.encode() if isinstance(message, str) else message
        assert all(not f.rsv1 for f in frames[1:])
        if frames[0].rsv1:
            if params["client_no_context_takeover"]:
                peer = zlib.decompressobj(-int(peer_wbits))
            assert inflate(frames, peer) == raw
        else:
            assert len(raw) < min_size or params["client_no_context_takeover"]
            assert b"".join(f.payload for f in frames) == raw
        if len(raw) >= min_size and raw.startswith(b"[{"):
            assert frames[0].rsv1, "compressible message sent uncompressed"
    # The long message went out in several frames, compressed to a fraction of its size.
    long_frames = out[7]
    assert long_frames[0].rsv1
    assert sum(len(f.payload) for f in long_frames) < len(sent[7]) // 3
    # The server compressed its echoes of the bigger messages (Node only above 1 KiB).
    assert back[3][0].rsv1 and back[7][0].rsv1
    # Control frames are never compressed.
    assert all(not f.rsv1 for f in sniffer.sent + sniffer.received if f.opcode >= 8)


# --------------------------------------------------------------------------- real servers


@pytest.mark.parametrize("options", list(CLIENT_OPTIONS))
def test_websockets_server(websockets_server_factory: Any, sniffer_factory: Any, options: str) -> None:
    server = websockets_deflate_server(websockets_server_factory, "default")
    sniffer = sniffer_factory(server.host, server.port)
    deflate = CLIENT_OPTIONS[options]
    ws = wsclient.connect(sniffer.url(server.url("/echo")), compression=deflate, close_timeout=3)
    name, params = ws.extensions[0]
    assert name == "permessage-deflate" and len(ws.extensions) == 1
    if options == "no-takeover":
        assert params["server_no_context_takeover"] is True
        assert params["client_no_context_takeover"] is True
    if options == "small-windows":
        assert params["server_max_window_bits"] == 9
        assert params["client_max_window_bits"] == 10
    if options == "window-8":
        assert params["client_max_window_bits"] == 8
    if options == "default":
        # websockets' server answers our valueless client_max_window_bits with a value.
        request = sniffer.client_side.head or b""
        assert b"permessage-deflate; client_max_window_bits\r\n" in request
    check_exchange(ws, sniffer, deflate.min_size)


def test_websockets_server_forbids_context_takeover(
    websockets_server_factory: Any, sniffer_factory: Any
) -> None:
    server = websockets_deflate_server(websockets_server_factory, "server-forbids-takeover")
    sniffer = sniffer_factory(server.host, server.port)
    ws = wsclient.connect(sniffer.url(server.url("/echo")), close_timeout=3)
    params = dict(ws.extensions)["permessage-deflate"]
    assert params["server_no_context_takeover"] is True
    assert params["client_no_context_takeover"] is True  # asked by the server, not by us
    check_exchange(ws, sniffer, DeflateOptions().min_size)


@pytest.mark.parametrize("options", list(CLIENT_OPTIONS))
def test_node_server(node_server_factory: Any, sniffer_factory: Any, options: str) -> None:
    server = node_server_factory(deflate=True)
    sniffer = sniffer_factory(server.host, server.port)
    deflate = CLIENT_OPTIONS[options]
    url = server.url("/echo")
    ws = wsclient.connect(sniffer.url(url), compression=deflate, close_timeout=3)
    params = dict(ws.extensions)["permessage-deflate"]
    if options == "no-takeover":
        assert params["server_no_context_takeover"] is True
        assert params["client_no_context_takeover"] is True
    if options == "small-windows":
        assert params["server_max_window_bits"] == 9
    check_exchange(ws, sniffer, deflate.min_size)
    seen = server.events.records("message", url.split("cid=")[1])
    assert [r["size"] for r in seen][:4] == [0, 2, 2, len(json_text(5000, 1))]


def test_over_tls(websockets_tls_server: Any, ca_path: str) -> None:
    # The default websockets fixture has compression on (websockets' default).
    with wsclient.connect(websockets_tls_server.url("/echo"), verify=ca_path) as ws:
        assert ws.extensions[0][0] == "permessage-deflate"
        big = json_text(100_000, 9)
        ws.send(big)
        assert ws.recv(timeout=10) == big


@pytest.mark.parametrize("kind", ["websockets", "node"])
def test_compression_none_offers_nothing(
    kind: str, websockets_server_factory: Any, node_server_factory: Any
) -> None:
    server = (
        websockets_server_factory(compression="deflate")
        if kind == "websockets"
        else node_server_factory(deflate=True)
    )
    with wsclient.connect(server.url("/headers"), compression=None) as ws:
        info = json.loads(ws.recv(timeout=5))
        assert "sec-websocket-extensions" not in info["headers"]
        assert ws.extensions == []
        ws.send(json_text(3000, 4))
        assert ws.recv(timeout=5) == json_text(3000, 4)


def test_server_without_compression(websockets_server_factory: Any, sniffer_factory: Any) -> None:
    server = websockets_server_factory(compression=None)
    sniffer = sniffer_factory(server.host, server.port)
    ws = wsclient.connect(sniffer.url(server.url("/echo")))
    assert ws.extensions == []
    message = json_text(3000, 5)
    ws.send(message)
    assert ws.recv(timeout=5) == message
    ws.close()
    sniffer.join()
    assert b"permessage-deflate" in (sniffer.client_side.head or b"")
    assert not any(f.rsv1 for f in sniffer.sent + sniffer.received)


def test_server_fragments_compressed_messages(websockets_server_factory: Any) -> None:
    """websockets sends a compressed message in several frames; each is inflated in turn."""
    parts = [json_text(20_000, seed) for seed in range(5)]

    def handler(peer: Any, conn: Any) -> None:
        conn.send(iter(parts))
        conn.send(iter([p.encode() for p in parts]))
        conn.recv()

    server = websockets_server_factory(handler, compression="deflate")
    with wsclient.connect(server.url("/")) as ws:
        assert ws.recv(timeout=10) == "".join(parts)
        assert ws.recv(timeout=10) == "".join(parts).encode()
        ws.send("done")


def test_decompressed_size_limit_with_a_real_server(websockets_server_factory: Any) -> None:
    """16 MiB of zeros compress to ~16 KiB; the 1 MiB message limit applies after inflating."""

    def handler(peer: Any, conn: Any) -> None:
        conn.send(bytes(16 << 20))
        try:
            conn.recv()
        except Exception:
            pass
        peer.events.add({"event": "close", "cid": None, "code": conn.close_code})

    server = websockets_server_factory(handler, compression="deflate")
    ws = wsclient.connect(server.url("/"), max_received_message_size=1 << 20)
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    assert server.events.wait_for("close", timeout=10)["code"] == 1009


# --------------------------------------------------------------------------- scripted server


def deflate_answer(value: str) -> list[tuple[str, str]]:
    return [("Sec-WebSocket-Extensions", value)]


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=07",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate, permessage-deflate",
        "x-webkit-deflate-frame",
    ],
)
def test_bad_negotiation_fails_the_handshake(raw_server: Any, answer: str) -> None:
    server = raw_server([wait_eof(required=False)], extra_headers=deflate_answer(answer))
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url("/"), timeout=5)


def test_unoffered_client_window_fails_the_handshake(raw_server: Any) -> None:
    server = raw_server(
        [wait_eof(required=False)],
        extra_headers=deflate_answer("permessage-deflate; client_max_window_bits=10"),
    )
    with pytest.raises(HandshakeError):
        wsclient.connect(server.url("/"), timeout=5, compression=DeflateOptions(client_max_window_bits=None))


def test_offer_is_sent(raw_server: Any) -> None:
    server = raw_server([serve_until_close()])
    options = DeflateOptions(server_max_window_bits=11, server_no_context_takeover=True)
    with wsclient.connect(server.url("/"), timeout=5, compression=options) as ws:
        assert ws.extensions == []
    server.join()
    assert server.connection.request_headers["sec-websocket-extensions"] == options.offer()


def compressed(message: bytes, *, final: bool = False) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = deflater.compress(message) + deflater.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return data if final else data[:-4]


def test_scripted_compressed_frames(raw_server: Any) -> None:
    """Single and fragmented compressed messages, a BFINAL ending, and one uncompressed."""
    text = json_text(4000, 6).encode()
    payload = compressed(text)
    script = [
        send_frame(Op.TEXT, payload, rsv1=True),
        send_frame(Op.BINARY, payload[:10], rsv1=True, fin=False),
        send_frame(Op.CONT, b"", fin=False),
        send_frame(Op.PING, b"p"),
        send_frame(Op.CONT, payload[10:], fin=True),
        send_frame(Op.TEXT, compressed(b"final block", final=True), rsv1=True),
        send_frame(Op.TEXT, b"plain"),
        expect_frame(Op.TEXT),
        serve_until_close(),
    ]
    server = raw_server(
        script, extra_headers=deflate_answer("permessage-deflate; server_no_context_takeover")
    )
    with wsclient.connect(server.url("/"), timeout=5) as ws:
        assert ws.recv(timeout=5) == text.decode()
        assert ws.recv(timeout=5) == text
        assert ws.recv(timeout=5) == "final block"
        assert ws.recv(timeout=5) == "plain"
        ws.send("x" * 1000)
    server.join()
    frame = next(f for f in server.connection.frames if f.opcode == Op.TEXT)
    assert frame.rsv1
    assert zlib.decompressobj(-15).decompress(frame.payload + TAIL) == b"x" * 1000


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # RSV1 on a continuation frame.
        ([build_frame(Op.TEXT, b"", fin=False), build_frame(Op.CONT, b"", rsv1=True)], 1002),
        # RSV1 on a control frame.
        ([build_frame(Op.PING, b"", rsv1=True)], 1002),
        # Corrupt deflate data.
        ([build_frame(Op.BINARY, b"\xff\xff\xff\xff", rsv1=True)], 1007),
        # Data after a final block.
        ([build_frame(Op.BINARY, compressed(b"x", final=True) + b"\x02\x00", rsv1=True)], 1007),
        # Compressed text that is not UTF-8.
        ([build_frame(Op.TEXT, compressed(b"ok \xff\xfe"), rsv1=True)], 1007),
    ],
)
def test_scripted_violations(raw_server: Any, frames: list[bytes], code: int) -> None:
    script = [send_frame(Op.TEXT, b"ready")]
    script += [send_frame_raw(f) for f in frames]
    script += [expect_close(code), echo_close()]
    server = raw_server(script, extra_headers=deflate_answer("permessage-deflate"))
    ws = wsclient.connect(server.url("/"), timeout=5)
    assert ws.recv(timeout=5) == "ready"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    server.join()


def test_rsv1_without_negotiation_fails(raw_server: Any) -> None:
    script = [
        send_frame(Op.TEXT, compressed(b"hello"), rsv1=True),
        expect_close(1002),
        echo_close(),
    ]
    server = raw_server(script)
    ws = wsclient.connect(server.url("/"), timeout=5)
    assert ws.extensions == []
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    server.join()


def test_bomb_closes_with_1009(raw_server: Any) -> None:
    """~100 KB of frames that would inflate to 100 MiB, against an 8 MiB budget."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = deflater.compress(zeros) + deflater.flush(zlib.Z_SYNC_FLUSH)
    steady = deflater.compress(zeros) + deflater.flush(zlib.Z_SYNC_FLUSH)
    bomb = first + steady * 99
    script = [
        send_frame(Op.BINARY, bomb[:50_000], rsv1=True, fin=False),
        send_frame_raw(build_frame(Op.CONT, bomb[50_000:], fin=True), ignore_errors=True),
        expect_close(1009),
        echo_close(),
    ]
    server = raw_server(script, extra_headers=deflate_answer("permessage-deflate"))
    ws = wsclient.connect(server.url("/"), timeout=5, max_received_message_size=8 << 20)
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    server.join()
    assert ws.close_code == 1009


def send_frame_raw(frame: bytes, *, ignore_errors: bool = False) -> Callable[[Any], None]:
    """A step sending prebuilt frame bytes."""

    def step(conn: Any) -> None:
        try:
            conn.send(frame)
        except OSError:
            if not ignore_errors:
                raise

    return step


def test_deflate_options_exported() -> None:
    assert wsclient.DeflateOptions is DeflateOptions
