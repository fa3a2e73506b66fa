"""One measurement: one library, one cell, against a running ``benchmarks.server``.

Every library gets the same work through the same loop; only opening a connection differs
(see ``OPENERS``). Each library runs with its defaults, except that the size limits are raised
for the 16 MiB cells and compression is switched off where a library offers it by default (the
server does not accept it for those cells anyway). With ``--compress`` (the compression cells)
the library offers permessage-deflate with its default settings instead, and the driver fails
unless the server accepted it. The result is printed as one ``RESULT {json}`` line.

    python -m benchmarks.driver --lib wsclient --cell recv-16 --url ws://127.0.0.1:PORT/
    python -m benchmarks.driver --lib wsclient --compress --cell recv-json-z --url ...
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import json
import os
import pstats
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.cells import (
    BATCH,
    CELLS,
    WSCLIENT_PY,
    Cell,
    binary_payload,
    message_pool,
    text_payload,
)

__all__ = ["OPENERS", "Conn", "main"]

BIG_LIMIT = 32 << 20
#: How long the scale cell waits for every connection's last message before it fails.
SCALE_WAIT = 120.0


@dataclass
class Conn:
    """The four bound methods a cell needs from an open connection."""

    send_text: Callable[[str], Any]
    send_binary: Callable[[bytes], Any]
    recv: Callable[[], Any]
    close: Callable[[], Any]
    #: The negotiated extensions as the library reports them ("" for none).
    extensions: str = ""
    #: The library's call that sends several messages in one write, if it has one.
    send_many: Callable[[Any], Any] | None = None
    #: The library's connection object itself (the scale cells register listeners on it).
    raw: Any = None


def open_websocket_client(url: str, big: bool, compress: bool = False) -> Conn:
    """websocket-client: ``websocket.create_connection`` (no size limits, no compression)."""
    import websocket

    if compress:
        raise ValueError("websocket-client has no permessage-deflate")
    ws = websocket.create_connection(url)
    return Conn(ws.send, ws.send_binary, ws.recv, ws.close, raw=ws)


def open_websockets(url: str, big: bool, compress: bool = False) -> Conn:
    """websockets: ``websockets.sync.client.connect``, compression off unless ``compress``."""
    from websockets.sync.client import connect

    # legacy=True: the historical direct-return behaviour, without websockets 17's warning.
    options: dict[str, Any] = {"compression": "deflate" if compress else None, "legacy": True}
    if big:
        options["max_size"] = BIG_LIMIT
    ws = connect(url, **options)
    extensions = ", ".join(repr(e) for e in ws.protocol.extensions)
    return Conn(ws.send, ws.send, ws.recv, ws.close, extensions, raw=ws)


def open_wsclient(url: str, big: bool, compress: bool = False) -> Conn:
    """wsclient: ``wsclient.connect``, compression off unless ``compress``."""
    import wsclient

    options: dict[str, Any] = {"compression": "deflate" if compress else None}
    if big:
        options["max_received_frame_size"] = BIG_LIMIT
        options["max_received_message_size"] = BIG_LIMIT
    ws = wsclient.connect(url, **options)
    extensions = ", ".join(repr(e) for e in ws.extensions)
    return Conn(ws.send, ws.send, ws.recv, ws.close, extensions, getattr(ws, "send_many", None), ws)


def open_wsclient_py(url: str, big: bool, compress: bool = False) -> Conn:
    """wsclient with its pure-Python masking: ``WSCLIENT_SPEEDUPS=0`` before the import."""
    os.environ["WSCLIENT_SPEEDUPS"] = "0"
    return open_wsclient(url, big, compress)


OPENERS: dict[str, Callable[..., Conn]] = {
    "websocket-client": open_websocket_client,
    "websockets": open_websockets,
    "wsclient": open_wsclient,
    WSCLIENT_PY: open_wsclient_py,
}


def masking_in_use() -> str | None:
    """``"c"`` or ``"python"`` once wsclient is imported in this process, else ``None``."""
    frames = sys.modules.get("wsclient.frames")
    return getattr(frames, "MASK_IMPLEMENTATION", None)


class _Clock:
    """``start()``/``stop()`` around the timed part; optionally profiles every thread."""

    def __init__(self, profile_path: str | None) -> None:
        self.t0 = self.t1 = 0.0
        self.c0 = self.c1 = 0.0
        self.profile_path = profile_path
        self.profiles: list[cProfile.Profile] = []
        self.main_profile: cProfile.Profile | None = None
        if profile_path:
            self._patch_threads()

    def _patch_threads(self) -> None:
        original = threading.Thread.run
        profiles = self.profiles

        def run(thread: threading.Thread) -> None:
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]

    def start(self) -> None:
        if self.profile_path:
            self.main_profile = cProfile.Profile()
            self.main_profile.enable()
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.c1 = time.process_time()
        if self.main_profile is not None:
            self.main_profile.disable()

    @property
    def elapsed(self) -> float:
        return self.t1 - self.t0

    @property
    def cpu(self) -> float:
        """CPU time of the whole client process (every thread) during the timed part."""
        return self.c1 - self.c0

    def dump(self) -> None:
        """Merge the main thread's and every finished thread's profile into one file."""
        if not self.profile_path or self.main_profile is None:
            return
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(5.0)
        stats = pstats.Stats(self.main_profile)
        for profile in self.profiles:
            stats.add(profile)
        stats.dump_stats(self.profile_path)


def cell_recv(cell: Cell, n: int, conn: Conn, clock: _Clock) -> dict[str, Any]:
    """Ask for ``n`` messages with ``go`` and read them."""
    expected: Any = (text_payload(cell.size) if cell.opcode == "text"
                     else binary_payload(cell.size))
    recv = conn.recv
    message = None
    clock.start()
    conn.send_text("go")
    for _ in range(n):
        message = recv()
    clock.stop()
    if message != expected:
        raise AssertionError(f"last message differs: {type(message).__name__}")
    conn.close()
    return {"messages": n, "payload_bytes": n * cell.size}


def cell_send(cell: Cell, n: int, conn: Conn, clock: _Clock, lib: str = "") -> dict[str, Any]:
    """Send ``n`` messages, then wait for the server's ``done``.

    Batched cells hand :data:`BATCH` messages at a time to the library's ``send_many``;
    websocket-client and websockets have no such call and send one by one. wsclient without
    ``send_many`` (before batching lands) fails the cell rather than measure the plain loop.
    """
    payload: Any
    send: Callable[[Any], Any]
    if cell.opcode == "text":
        payload, send = text_payload(cell.size), conn.send_text
    else:
        payload, send = binary_payload(cell.size), conn.send_binary
    recv = conn.recv
    send_many = conn.send_many if cell.batched else None
    if cell.batched and send_many is None and lib.startswith("wsclient"):
        conn.close()
        raise NotImplementedError("wsclient has no send_many yet: the batched cell is a placeholder")
    if send_many is not None:
        batch = [payload] * BATCH
        whole, rest = divmod(n, BATCH)
        clock.start()
        for _ in range(whole):
            send_many(batch)
        if rest:
            send_many(batch[:rest])
        reply = recv()
        clock.stop()
        if reply != "done":
            raise AssertionError(f"expected 'done', got {reply!r}")
        conn.close()
        return {"messages": n, "payload_bytes": n * cell.size}
    clock.start()
    for _ in range(n):
        send(payload)
    reply = recv()
    clock.stop()
    if reply != "done":
        raise AssertionError(f"expected 'done', got {reply!r}")
    conn.close()
    return {"messages": n, "payload_bytes": n * cell.size}


def _pool(cell: Cell) -> tuple[list[Any], list[int]]:
    """The cell's cycled messages and their sizes in bytes (UTF-8 for text)."""
    pool = message_pool(cell)
    return pool, [len(m.encode("utf-8")) if isinstance(m, str) else len(m) for m in pool]


def cell_recv_pool(cell: Cell, n: int, conn: Conn, clock: _Clock) -> dict[str, Any]:
    """Like :func:`cell_recv` for a cycled pool of messages (the compression cells)."""
    pool, sizes = _pool(cell)
    expected = pool[(n - 1) % len(pool)]
    recv = conn.recv
    message = None
    clock.start()
    conn.send_text("go")
    for _ in range(n):
        message = recv()
    clock.stop()
    if message != expected:
        raise AssertionError(f"last message differs: {type(message).__name__}")
    conn.close()
    return {"messages": n, "payload_bytes": sum(sizes[k % len(pool)] for k in range(n))}


def cell_send_pool(cell: Cell, n: int, conn: Conn, clock: _Clock) -> dict[str, Any]:
    """Like :func:`cell_send` for a cycled pool; the server checks the total size it got."""
    pool, sizes = _pool(cell)
    messages = [pool[k % len(pool)] for k in range(n)]
    send = conn.send_text if cell.opcode == "text" else conn.send_binary
    recv = conn.recv
    clock.start()
    for message in messages:
        send(message)
    reply = recv()
    clock.stop()
    if reply != "done":
        raise AssertionError(f"expected 'done', got {reply!r}")
    conn.close()
    return {"messages": n, "payload_bytes": sum(sizes[k % len(pool)] for k in range(n))}


def cell_echo(cell: Cell, n: int, conn: Conn, clock: _Clock) -> dict[str, Any]:
    """``n`` sequential round trips of one text message."""
    payload = text_payload(cell.size)
    send = conn.send_text
    recv = conn.recv
    reply = None
    clock.start()
    for _ in range(n):
        send(payload)
        reply = recv()
    clock.stop()
    if reply != payload:
        raise AssertionError(f"echo differs: {reply!r}")
    conn.close()
    return {"messages": n, "payload_bytes": n * cell.size}


def cell_connect(opener: Callable[[str, bool], Conn], url: str, n: int,
                 clock: _Clock) -> dict[str, Any]:
    """``n`` sequential connect + close (after one untimed warm-up)."""
    opener(url, False).close()
    clock.start()
    for _ in range(n):
        opener(url, False).close()
    clock.stop()
    return {"messages": n, "payload_bytes": 0}


def _proc_status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _settle() -> None:
    time.sleep(0.3)
    gc.collect()


def cell_idle(opener: Callable[[str, bool], Conn], url: str, n: int) -> dict[str, Any]:
    """Hold ``n`` open connections: RSS and thread deltas, then tracemalloc in a second pass."""
    opener(url, False).close()  # warm-up: lazy imports, shared threads
    _settle()
    rss0 = _proc_status("VmRSS")
    threads0 = _proc_status("Threads")
    conns = [opener(url, False) for _ in range(n)]
    _settle()
    rss1 = _proc_status("VmRSS")
    threads1 = _proc_status("Threads")
    for conn in conns:
        conn.close()
    conns.clear()
    _settle()

    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    conns = [opener(url, False) for _ in range(n)]
    _settle()
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for conn in conns:
        conn.close()
    return {
        "connections": n,
        "rss_kib_per_conn": (rss1 - rss0) / n,
        "traced_kib_per_conn": (traced1 - traced0) / 1024 / n,
        "threads_per_conn": (threads1 - threads0) / n,
        "threads_total": threads1,
    }


def _raise_nofile_limit() -> None:
    from benchmarks.server import raise_nofile_limit

    raise_nofile_limit()


class _Countdown:
    """Counts connections that received everything; ``wait`` until all did."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.bad = 0

    def finished(self, ok: bool) -> None:
        with self.lock:
            self.left -= 1
            if not ok:
                self.bad += 1
            if self.left == 0:
                self.done.set()


def _consume_with_listener(conn: Conn, per: int, expected: bytes, countdown: _Countdown) -> None:
    """wsclient: a ``message`` listener on the connection's own reader thread (no extra thread)."""
    seen = 0

    def on_message(data: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == per:
            countdown.finished(data == expected)

    conn.raw.on("message", on_message)


def _consume_with_thread(conn: Conn, per: int, expected: bytes,
                         countdown: _Countdown) -> threading.Thread:
    """websocket-client, websockets: one consumer thread per connection calling ``recv()``."""

    def consume() -> None:
        recv = conn.recv
        data = None
        try:
            for _ in range(per):
                data = recv()
        finally:
            countdown.finished(data == expected)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread


def cell_scale(lib: str, opener: Callable[[str, bool], Conn], url: str, conns: int, per: int,
               size: int, clock: _Clock) -> dict[str, Any]:
    """``conns`` connections at once, each receiving ``per`` binary messages concurrently.

    Opening all of them is timed on its own; RSS and threads are read once every connection
    is open and its consumer is in place (wsclient: a ``message`` listener; the others: one
    thread per connection in ``recv()``, the usual way to serve many connections with them);
    the timed part runs from the first ``go`` to the last connection's last message.
    """
    _raise_nofile_limit()
    expected = binary_payload(size)
    opener(url, False).close()  # warm-up: lazy imports, shared threads
    _settle()
    rss0 = _proc_status("VmRSS")
    threads0 = _proc_status("Threads")
    t0 = time.perf_counter()
    opened = [opener(url, False) for _ in range(conns)]
    open_seconds = time.perf_counter() - t0
    countdown = _Countdown(conns)
    threads: list[threading.Thread] = []
    for conn in opened:
        if lib.startswith("wsclient"):
            _consume_with_listener(conn, per, expected, countdown)
        else:
            threads.append(_consume_with_thread(conn, per, expected, countdown))
    _settle()
    rss1 = _proc_status("VmRSS")
    threads1 = _proc_status("Threads")
    clock.start()
    for conn in opened:
        conn.send_text("go")
    finished = countdown.done.wait(SCALE_WAIT)
    clock.stop()
    if not finished:  # main() exits at once: no closing a thousand stuck connections
        raise AssertionError(f"{countdown.left} of {conns} connections did not get every "
                             f"message within {SCALE_WAIT:.0f} s")
    if countdown.bad:
        raise AssertionError(f"{countdown.bad} connections got a wrong last message")
    for conn in opened:
        conn.close()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {
        "messages": conns * per,
        "payload_bytes": conns * per * size,
        "connections": conns,
        "open_seconds": open_seconds,
        "rss_kib_per_conn": (rss1 - rss0) / conns,
        "threads_per_conn": (threads1 - threads0) / conns,
    }


def cell_storm(opener: Callable[[str, bool], Conn], url: str, n: int, workers: int,
               clock: _Clock) -> dict[str, Any]:
    """``workers`` threads open and close ``n`` connections between them, all at once."""
    _raise_nofile_limit()
    opener(url, False).close()
    errors: list[BaseException] = []
    gate = threading.Barrier(workers + 1)

    def work(share: int) -> None:
        gate.wait()
        try:
            for _ in range(share):
                opener(url, False).close()
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    pool = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    clock.start()
    gate.wait()
    for thread in pool:
        thread.join()
    clock.stop()
    if errors:
        raise AssertionError(f"{len(errors)} opening thread(s) failed: {errors[0]!r}")
    return {"messages": n, "payload_bytes": 0, "threads": workers}


def _handshake_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode("ascii")


def _masked(opcode: int, payload: bytes) -> bytes:
    # A zero mask key leaves the payload as it is: fine for a baseline's two control messages.
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


def cell_raw(cell: Cell, n: int, url: str, clock: _Clock) -> dict[str, Any]:
    """Baseline: a plain socket reads the same bytes into one reusable buffer, no parsing."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_handshake_request(host, int(port), "/"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    got = len(head.split(b"\r\n\r\n", 1)[1])
    header = 2 + (2 if cell.size >= 126 else 0) + (6 if cell.size >= 1 << 16 else 0)
    total = n * (header + cell.size)
    buf = bytearray(1 << 20)
    recv_into = sock.recv_into
    clock.start()
    sock.sendall(_masked(1, b"go"))
    while got < total:
        got += recv_into(buf)
    clock.stop()
    sock.sendall(_masked(8, b"\x03\xe8"))
    while sock.recv(1 << 16):
        pass
    sock.close()
    return {"messages": n, "payload_bytes": n * cell.size}


def run(lib: str, cell: Cell, url: str, n: int, profile: str | None,
        compress: bool = False, connections: int = 0) -> dict[str, Any]:
    """Run one cell with one library; the result dict is what ``RESULT`` prints.

    ``compress``: offer permessage-deflate (the compression cells); the result then records
    what was negotiated, and a connection without it is an error.
    """
    clock = _Clock(profile)
    if lib == "raw":
        result = cell_raw(cell, n, url, clock)
    elif cell.payload != "fixed":
        conn = OPENERS[lib](url, cell.big, compress=compress)
        if bool(conn.extensions) != compress:
            conn.close()
            raise AssertionError(f"compression {'not ' if compress else ''}negotiated: "
                                 f"{conn.extensions or 'no extensions'}")
        body = {"recv": cell_recv_pool, "send": cell_send_pool}[cell.kind]
        result = body(cell, n, conn, clock)
        result["extensions"] = conn.extensions
    else:
        opener = OPENERS[lib]
        if cell.kind == "idle":
            return cell_idle(opener, url, n)
        if cell.kind == "connect":
            result = cell_connect(opener, url, n, clock)
        elif cell.kind == "scale":
            result = cell_scale(lib, opener, url, connections or cell.connections, n, cell.size, clock)
        elif cell.kind == "storm":
            result = cell_storm(opener, url, n, cell.threads, clock)
        else:
            conn = opener(url, cell.big)
            if cell.kind == "send":
                result = cell_send(cell, n, conn, clock, lib)
            else:
                body = {"recv": cell_recv, "echo": cell_echo}[cell.kind]
                result = body(cell, n, conn, clock)
    clock.dump()
    result["elapsed"] = clock.elapsed
    result["cpu"] = clock.cpu
    masking = masking_in_use()
    if masking is not None:
        result["masking"] = masking
        if lib == WSCLIENT_PY and masking != "python":
            raise AssertionError(f"{WSCLIENT_PY} ran with {masking} masking")
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: print one ``RESULT`` line (or ``ERROR`` and exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", required=True, choices=(*OPENERS, "raw"))
    parser.add_argument("--cell", required=True, choices=tuple(CELLS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, help="override the cell's count")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", help="write merged cProfile stats of all threads here")
    parser.add_argument("--connections", type=int, default=0,
                        help="simultaneous connections of a scale cell (default: the cell's)")
    parser.add_argument("--compress", action="store_true",
                        help="offer permessage-deflate (compression cells only)")
    args = parser.parse_args(argv)
    cell = CELLS[args.cell]
    n = args.count or cell.n(args.quick)
    try:
        if args.compress and not cell.compression:
            raise ValueError(f"--compress needs a compression cell, not {cell.name}")
        result = run(args.lib, cell, args.url, n, args.profile, args.compress, args.connections)
    except Exception as exc:  # reported to the runner, which keeps going
        sys.stdout.write("ERROR " + json.dumps(f"{type(exc).__name__}: {exc}") + "\n")
        sys.stdout.flush()
        if cell.kind in ("scale", "storm"):
            # A failed scale cell can leave a thousand connections with their (non-daemon)
            # library threads behind: exiting normally would wait for all of them.
            os._exit(1)
        sys.exit(1)
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    if cell.kind in ("scale", "storm"):
        os._exit(0)


if __name__ == "__main__":
    main()
