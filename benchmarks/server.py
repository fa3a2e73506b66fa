"""A loopback WebSocket server whose own cost is close to zero.

Raw sockets, no framework: it completes the opening handshake itself (``Sec-WebSocket-Accept``;
it never negotiates a subprotocol, and an extension only with ``--deflate``, so compression
stays off for every client of the issue-5 cells), then serves one of these modes:

``recv``
    wait for the client's first message (``go``), then write ``count`` frames that were
    serialised once into one buffer, with ``sendall`` of that buffer;
``send``
    read into one reusable buffer and discard, walking only the frame headers to count
    messages; when ``count`` messages have arrived, send one text message ``done``;
``echo``
    send every data frame back (unmasked, same opcode and FIN);
``handshake``
    accept and wait for the client's close (connect + close cells);
``idle``
    like ``handshake``, one thread per connection, for many open connections at once.

With ``--threaded`` every mode serves each connection on its own thread (``idle`` always
does), for the scale cells of issue 12: ``recv --threaded`` then feeds a thousand clients at
once, each after its own ``go``. The open-file limit is raised to the hard limit at start.

With ``--deflate`` (the compression cells of issue 4) the server accepts a client's
permessage-deflate offer (RFC 7692) and then, in ``recv`` mode, writes messages that were
compressed once, in order, by one zlib compressor with a sync flush per message (context
takeover, as both libraries negotiate by default; the ``00 00 ff ff`` tail stripped, RSV1
set); in ``send`` mode it unmasks and inflates every message and checks the total inflated
size before it answers ``done``. A client that offers nothing gets the plain frames. With
``--payload json`` / ``jsonl`` the messages are the cycled pool of ``cells.message_pool``
instead of one repeated payload.

Every mode answers pings and answers the client's close frame with a close frame (1000) and
then closes TCP, as a server should. The server serves connections until it receives SIGTERM,
then prints one ``STATS {json}`` line with its own CPU time, so a server-bound cell is visible.
On start it prints ``PORT <n>``.

    python -m benchmarks.server --mode recv --opcode text --size 16 --count 100000
    python -m benchmarks.server --mode send --size 200 --count 100000 --payload json --deflate
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import resource
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from benchmarks.cells import Cell, binary_payload, message_pool, text_payload

__all__ = ["main", "raise_nofile_limit", "serialize_frame"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_1000 = b"\x88\x02\x03\xe8"
RECV_BUFFER = 1 << 20
SMALL_BUFFER = 16 << 10
#: Serialised frames are grouped into write chunks of about this size.
CHUNK = 1 << 20
#: The empty stored block that ends a sync-flushed message (RFC 7692 section 7.2.1).
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def serialize_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked (server-to-client) frame."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        header = bytes((first, n))
    elif n < 1 << 16:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


def _unmask(mask: bytes, data: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


@dataclass(frozen=True)
class _Deflate:
    """The permessage-deflate parameters agreed with one client (RFC 7692)."""

    #: Our compression window (``server_max_window_bits`` if the client asked, else 15).
    window_bits: int = 15
    #: Compress every message on its own (the client offered ``server_no_context_takeover``).
    no_context_takeover: bool = False


def _negotiate(offers: str) -> tuple[_Deflate, str] | None:
    """Accept the first permessage-deflate offer of a ``Sec-WebSocket-Extensions`` value.

    Returns the agreed parameters and the response's header value, or ``None`` if there is
    no offer we can accept. The answer echoes ``server_no_context_takeover``,
    ``client_no_context_takeover`` and ``server_max_window_bits`` when offered; it leaves out
    ``client_max_window_bits``, so the client keeps its own window (we inflate with 15 bits,
    which reads any smaller window).
    """
    for offer in offers.split(","):
        name, *raw_params = [part.strip() for part in offer.split(";")]
        if name.lower() != "permessage-deflate":
            continue
        params: dict[str, str | None] = {}
        for param in raw_params:
            key, eq, value = param.partition("=")
            params[key.strip().lower()] = value.strip().strip('"') if eq else None
        answer = ["permessage-deflate"]
        bits = 15
        no_takeover = "server_no_context_takeover" in params
        if no_takeover:
            answer.append("server_no_context_takeover")
        if "client_no_context_takeover" in params:
            answer.append("client_no_context_takeover")
        if "server_max_window_bits" in params:
            wanted = params["server_max_window_bits"]
            if wanted is None or not wanted.isdigit() or not 8 <= int(wanted) <= 15:
                continue
            bits = int(wanted)
            answer.append(f"server_max_window_bits={bits}")
        return _Deflate(bits, no_takeover), "; ".join(answer)
    return None


class _Stop(Exception):
    """Raised from the SIGTERM handler to leave the accept loop."""


class _Peer:
    """One accepted connection: a reusable receive buffer and a header-walking frame loop."""

    def __init__(self, sock: socket.socket, buffer_size: int) -> None:
        self.sock = sock
        self.buf = bytearray(buffer_size)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        #: Bytes received after the opening handshake (the compression cells' wire size).
        self.received = 0
        #: What permessage-deflate was agreed in :meth:`handshake` (``None``: not in use).
        self.deflate: _Deflate | None = None

    def fill(self) -> bool:
        """Read more bytes after the unread ones; False on EOF."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            unread = self.end - self.start
            if self.start == 0:  # a frame we must keep whole is larger than the buffer
                self.view.release()
                self.buf.extend(bytes(len(self.buf)))
                self.view = memoryview(self.buf)
            else:
                self.buf[:unread] = self.buf[self.start:self.end]
                self.start, self.end = 0, unread
        try:
            n = self.sock.recv_into(self.view[self.end:])
        except ConnectionError:
            return False
        self.end += n
        self.received += n
        return n > 0

    def handshake(self, deflate: bool = False,
                  prepare: Callable[[_Deflate | None], None] | None = None) -> bool:
        """Read the upgrade request and answer 101; False if the client went away.

        ``deflate``: accept a permessage-deflate offer (then :attr:`deflate` is set).
        ``prepare``: called with the agreed parameters before the 101 goes out, so that work
        which depends on them is done while the client still waits in its ``connect()``.
        """
        while True:
            at = self.buf.find(b"\r\n\r\n", 0, self.end)
            if at >= 0:
                break
            if not self.fill():
                return False
        request = bytes(self.buf[:at]).decode("latin-1")
        self.start = at + 4
        self.received = self.end - self.start
        key = ""
        offers: list[str] = []
        for line in request.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
            elif name.strip().lower() == "sec-websocket-extensions":
                offers.append(value.strip())
        accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode()
        extension = b""
        if deflate and offers:
            agreed = _negotiate(", ".join(offers))
            if agreed is not None:
                self.deflate, answer = agreed
                extension = b"Sec-WebSocket-Extensions: " + answer.encode("ascii") + b"\r\n"
        if prepare is not None:
            prepare(self.deflate)
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode("ascii") + b"\r\n"
            + extension + b"\r\n"
        )
        return True

    def serve(self, *, expect: int = 0, echo: bool = False, until_first: bool = False) -> None:
        """Walk frames until the client's close (answered) or EOF.

        ``expect``: after that many complete data messages, send a ``done`` text message.
        ``echo``: send every data frame back. ``until_first``: return after the first data
        frame (the ``go`` of the receive cells).
        """
        buf = self.buf
        sock = self.sock
        messages = 0
        skip = 0
        while True:
            if skip:
                avail = self.end - self.start
                if avail >= skip:
                    self.start += skip
                    skip = 0
                else:
                    skip -= avail
                    self.start = self.end = 0
                    if not self.fill():
                        return
                    continue
            start = self.start
            avail = self.end - start
            if avail < 2:
                if not self.fill():
                    return
                continue
            b0 = buf[start]
            b1 = buf[start + 1]
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                hlen = 4
                if avail < 4:
                    if not self.fill():
                        return
                    continue
                length = (buf[start + 2] << 8) | buf[start + 3]
            elif length == 127:
                hlen = 10
                if avail < 10:
                    if not self.fill():
                        return
                    continue
                length = int.from_bytes(buf[start + 2:start + 10], "big")
            if b1 & 0x80:
                hlen += 4
            if avail < hlen:
                if not self.fill():
                    return
                continue
            opcode = b0 & 0x0F
            if opcode >= 8 or echo or until_first:
                # The payload is needed: wait until the whole frame is buffered.
                if avail < hlen + length:
                    if not self.fill():
                        return
                    continue
                body = start + hlen
                data = bytes(buf[body:body + length])
                if b1 & 0x80:
                    data = _unmask(bytes(buf[body - 4:body]), data)
                self.start = body + length
                if opcode == 8:
                    self._close()
                    return
                if opcode == 9:
                    sock.sendall(serialize_frame(10, data))
                elif opcode < 8:
                    if echo:
                        sock.sendall(serialize_frame(opcode, data, fin=bool(b0 & 0x80)))
                    if until_first:
                        return
                continue
            # A data frame whose payload is discarded without being looked at.
            self.start = start + hlen
            if b0 & 0x80:
                messages += 1
                if messages == expect:
                    sock.sendall(serialize_frame(1, b"done"))
            rest = avail - hlen
            if rest >= length:
                self.start += length
            else:
                skip = length - rest
                self.start = self.end

    def serve_inflate(self, expect: int, expect_bytes: int) -> None:
        """``send`` mode with permessage-deflate: inflate every message, then answer.

        Every data frame is buffered whole, unmasked and, for a message whose first frame has
        RSV1, fed to one inflater (client context takeover: one stream for the connection).
        After ``expect`` messages the server sends ``done`` if the inflated sizes add up to
        ``expect_bytes``, else ``bad <got> != <expected>``. Then it walks frames until the
        client's close, like :meth:`serve`.
        """
        buf = self.buf
        sock = self.sock
        inflater = zlib.decompressobj(-15)
        messages = 0
        total = 0
        compressed = False
        while True:
            start = self.start
            avail = self.end - start
            if avail < 2:
                if not self.fill():
                    return
                continue
            b0 = buf[start]
            b1 = buf[start + 1]
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                hlen = 4
            elif length == 127:
                hlen = 10
            if b1 & 0x80:
                hlen += 4
            if avail < hlen:
                if not self.fill():
                    return
                continue
            if length == 126:
                length = (buf[start + 2] << 8) | buf[start + 3]
            elif length == 127:
                length = int.from_bytes(buf[start + 2:start + 10], "big")
            if avail < hlen + length:
                if not self.fill():
                    return
                continue
            body = start + hlen
            data = bytes(buf[body:body + length])
            if b1 & 0x80:
                data = _unmask(bytes(buf[body - 4:body]), data)
            self.start = body + length
            opcode = b0 & 0x0F
            if opcode == 8:
                self._close()
                return
            if opcode == 9:
                sock.sendall(serialize_frame(10, data))
                continue
            if opcode >= 8:
                continue
            if opcode:  # the first frame of a message
                compressed = bool(b0 & 0x40)
            if compressed:
                total += len(inflater.decompress(data))
                if b0 & 0x80:
                    total += len(inflater.decompress(DEFLATE_TAIL))
            else:
                total += length
            if b0 & 0x80:
                messages += 1
                if messages == expect:
                    reply = b"done" if total == expect_bytes else f"bad {total} != {expect_bytes}".encode()
                    sock.sendall(serialize_frame(1, reply))

    def _close(self) -> None:
        try:
            self.sock.sendall(CLOSE_1000)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Stats:
    """Process CPU time from the first accepted connection to the end of the last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first_cpu: float | None = None
        self.last_cpu = 0.0
        self.first_wall = 0.0
        self.last_wall = 0.0
        self.connections = 0
        self.bytes_written = 0
        self.bytes_read = 0
        #: CPU spent preparing payloads after a handshake (compression cells), not counted.
        self.excluded = 0.0

    def begin(self) -> None:
        with self.lock:
            if self.first_cpu is None:
                self.first_cpu = time.process_time()
                self.first_wall = time.perf_counter()

    def exclude(self, seconds: float) -> None:
        with self.lock:
            self.excluded += seconds

    def end(self, written: int = 0, read: int = 0) -> None:
        cpu = time.process_time()
        with self.lock:
            self.connections += 1
            self.last_cpu = max(self.last_cpu, cpu)
            self.last_wall = time.perf_counter()
            self.bytes_written += written
            self.bytes_read += read

    def as_dict(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = 0.0 if self.first_cpu is None else self.last_cpu - self.first_cpu - self.excluded
        return {
            "cpu": cpu,
            "wall": self.last_wall - self.first_wall - self.excluded,
            "connections": self.connections,
            "bytes_written": self.bytes_written,
            "bytes_read": self.bytes_read,
            "maxrss_kib": usage.ru_maxrss,
        }


def _build_chunks(opcode: int, payload: bytes, count: int) -> list[tuple[bytes, int]]:
    """The pre-serialised output as ``(buffer, times)`` pairs covering ``count`` frames."""
    frame = serialize_frame(opcode, payload)
    per_chunk = max(1, CHUNK // len(frame))
    if per_chunk == 1:
        return [(frame, count)]
    whole, rest = divmod(count, per_chunk)
    chunks = [(frame * per_chunk, whole)]
    if rest:
        chunks.append((frame * rest, 1))
    return chunks


def _pool_cell(args: argparse.Namespace) -> Cell:
    """A stand-in cell that tells ``cells.message_pool`` which payloads to build."""
    return Cell("server", "", args.mode, args.opcode, args.size, args.count, args.count,
                "split", "", payload=args.payload)


def _encoded_pool(args: argparse.Namespace) -> list[bytes]:
    return [m.encode("utf-8") if isinstance(m, str) else m for m in message_pool(_pool_cell(args))]


def _build_stream(opcode: int, pool: list[bytes], count: int,
                  deflate: _Deflate | None) -> list[tuple[bytes, int]]:
    """``count`` frames of the cycled ``pool`` in write chunks of about :data:`CHUNK`.

    With ``deflate``, one compressor runs over the whole sequence in order (a sync flush
    per message, or a full flush without context takeover), so the frames are exactly what a
    compressing server would send on this connection.
    """
    compressor: Any = None
    flush = zlib.Z_SYNC_FLUSH
    if deflate is not None:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                      -max(deflate.window_bits, 9))
        if deflate.no_context_takeover:
            flush = zlib.Z_FULL_FLUSH
    chunks: list[tuple[bytes, int]] = []
    pending: list[bytes] = []
    size = 0
    for k in range(count):
        payload = pool[k % len(pool)]
        if compressor is None:
            frame = serialize_frame(opcode, payload)
        else:
            data = compressor.compress(payload) + compressor.flush(flush)
            frame = serialize_frame(0x40 | opcode, data[:-4])  # RSV1, without 00 00 ff ff
        pending.append(frame)
        size += len(frame)
        if size >= CHUNK:
            chunks.append((b"".join(pending), 1))
            pending, size = [], 0
    if pending:
        chunks.append((b"".join(pending), 1))
    return chunks


def _handle(sock: socket.socket, args: argparse.Namespace, stats: _Stats,
            chunks: list[tuple[bytes, int]]) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stats.begin()
    written = 0
    small = args.mode in ("handshake", "idle", "echo")
    peer = _Peer(sock, SMALL_BUFFER if small else RECV_BUFFER)
    want = 0

    def prepare(deflate: _Deflate | None) -> None:
        # Payloads that depend on the negotiation are built per connection, before the 101
        # (the client's connect() is not timed); that CPU is left out of the server's figure.
        nonlocal chunks, want
        cpu0 = time.process_time()
        pool = _encoded_pool(args)
        if args.mode == "recv":
            opcode = 1 if args.opcode == "text" else 2
            chunks = _build_stream(opcode, pool, args.count, deflate)
        else:
            want = sum(len(pool[k % len(pool)]) for k in range(args.count))
        stats.exclude(time.process_time() - cpu0)

    lazy = args.mode in ("recv", "send") and not chunks and (args.deflate or args.payload != "fixed")
    try:
        if not peer.handshake(deflate=args.deflate, prepare=prepare if lazy else None):
            return
        if args.mode == "send" and peer.deflate is not None:
            peer.serve_inflate(args.count, want)
        elif args.mode == "recv":
            peer.serve(until_first=True)
            sendall = sock.sendall
            for chunk, times in chunks:
                for _ in range(times):
                    sendall(chunk)
                written += len(chunk) * times
            peer.serve()
        elif args.mode == "send":
            peer.serve(expect=args.count)
        elif args.mode == "echo":
            peer.serve(echo=True)
        else:
            peer.serve()
    except OSError:
        pass
    finally:
        sock.close()
        stats.end(written, peer.received)


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print ``PORT``, serve until SIGTERM, print ``STATS``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", required=True,
                        choices=("recv", "send", "echo", "handshake", "idle"))
    parser.add_argument("--opcode", choices=("text", "binary"), default="text")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--payload", choices=("fixed", "json", "jsonl"), default="fixed",
                        help="one repeated payload, or a cycled pool (cells.message_pool)")
    parser.add_argument("--threaded", action="store_true",
                        help="one thread per connection (the scale cells)")
    parser.add_argument("--deflate", action="store_true",
                        help="accept permessage-deflate when the client offers it")
    args = parser.parse_args(argv)
    threaded = args.mode == "idle" or args.threaded
    raise_nofile_limit()
    if threaded:
        # A thousand server threads: small stacks (the frame loop is shallow).
        threading.stack_size(256 << 10)

    chunks: list[tuple[bytes, int]] = []
    if args.mode == "recv" and args.payload == "fixed" and not args.deflate:
        if args.opcode == "text":
            chunks = _build_chunks(1, text_payload(args.size).encode("utf-8"), args.count)
        else:
            chunks = _build_chunks(2, binary_payload(args.size), args.count)

    stats = _Stats()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(4096)  # the scale cells open up to 1000 connections at once
    sys.stdout.write(f"PORT {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        while True:
            sock, _ = listener.accept()
            if threaded:
                threading.Thread(target=_handle, args=(sock, args, stats, chunks),
                                 daemon=True).start()
            else:
                _handle(sock, args, stats, chunks)
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        listener.close()
    sys.stdout.write("STATS " + json.dumps(stats.as_dict()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
