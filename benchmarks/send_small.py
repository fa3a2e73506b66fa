"""Where the time of ``send 100k x 16 B`` goes: wsclient's own work versus the kernel's.

Starts ``benchmarks.server --mode send`` (pinned to CPU 1 unless ``--no-pin``; this process
pins itself to CPU 0), then measures, in interleaved rounds, per message:

``encode``
    ``protocol.encode_message(text)`` alone, no socket (framing + masking + key draw);
``sendall``
    ``socket.sendall(frame)`` of one pre-encoded 22-byte frame on a connected wsclient
    socket, in a loop: the system call and the kernel's TCP loopback path, nothing else;
``send``
    ``ws.send(text)``: the whole public path (type check, send lock, state checks, encode,
    sendall);
``send, no write``
    ``ws.send(text)`` with the socket's ``sendall`` replaced by a no-op for that loop:
    wsclient's own work per message, exactly;
``send - sendall``
    derived, same round: what ``send`` costs beyond the bare system call.

Every phase that writes uses its own connection and ends when the server has counted every
message (its ``done``). Wall-clock and process CPU time are both reported; the best round
counts for each phase (the least disturbed by other load), the median beside it.

    python -m benchmarks.send_small --count 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.cells import text_payload

ROOT = Path(__file__).resolve().parent.parent


def _start_server(count: int, pin: bool) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "benchmarks.server", "--mode", "send", "--opcode", "text",
            "--size", "16", "--count", str(count)]
    if pin:
        argv = ["taskset", "-c", "1", *argv]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, f"ws://127.0.0.1:{int(line.split()[1])}/"


class _NoWrite:
    """Stands in for the socket during the ``send, no write`` phase: ``sendall`` does
    nothing, everything else (the reader's reads) goes to the real socket."""

    def __init__(self, sock: object) -> None:
        self._real = sock

    def sendall(self, data: bytes) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {0})

    import wsclient
    from wsclient.frames import MASK_IMPLEMENTATION

    n = args.count
    text = text_payload(16)
    server, url = _start_server(n, pin)
    results: dict[str, list[tuple[float, float]]] = {
        "encode": [], "sendall": [], "send": [], "send, no write": []}
    try:
        for _ in range(args.rounds):
            # encode only: a protocol object of a live connection, nothing written.
            ws = wsclient.connect(url, compression=None)
            proto = ws._protocol
            encode = proto.encode_message

            def encode_only(encode: Callable[[str], object] = encode) -> None:
                for _ in range(n):
                    encode(text)

            results["encode"].append(_timed(encode_only))
            frame = encode(text)
            assert isinstance(frame, bytes) and len(frame) == 22
            # sendall of one ready frame (a fixed mask key: the server does not care).
            sock = ws._sock
            sendall = sock.sendall

            def raw_sendall(sendall: Callable[[bytes], None] = sendall, frame: bytes = frame,
                            ws: wsclient.WebSocketConnection = ws) -> None:
                for _ in range(n):
                    sendall(frame)
                if ws.recv(timeout=60) != "done":
                    raise AssertionError("server did not count every frame")

            results["sendall"].append(_timed(raw_sendall))
            ws.close()
            # the public path
            ws = wsclient.connect(url, compression=None)
            send = ws.send

            def public_send(send: Callable[[str], None] = send,
                            ws: wsclient.WebSocketConnection = ws) -> None:
                for _ in range(n):
                    send(text)
                if ws.recv(timeout=60) != "done":
                    raise AssertionError("server did not count every message")

            results["send"].append(_timed(public_send))
            # the public path with the write taken out: the socket's sendall swapped for a
            # no-op for this loop only.
            real_sock = ws._sock
            ws._sock = _NoWrite(real_sock)  # type: ignore[assignment]

            def send_no_write(send: Callable[[str], None] = send) -> None:
                for _ in range(n):
                    send(text)

            results["send, no write"].append(_timed(send_no_write))
            ws._sock = real_sock
            ws.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)

    def per_msg(values: list[tuple[float, float]], i: int) -> tuple[float, float]:
        xs = [v[i] * 1e6 / n for v in values]
        return min(xs), statistics.median(xs)

    print(f"# {n} messages x {args.rounds} rounds; masking: {MASK_IMPLEMENTATION}; pinned: {pin}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| phase | wall µs/msg best | median | CPU µs/msg best | median |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        wb, wm = per_msg(values, 0)
        cb, cm = per_msg(values, 1)
        print(f"| {name} | {wb:.2f} | {wm:.2f} | {cb:.2f} | {cm:.2f} |")
    sw = [s[0] - r[0] for s, r in zip(results["send"], results["sendall"], strict=True)]
    sc = [s[1] - r[1] for s, r in zip(results["send"], results["sendall"], strict=True)]
    print(f"| send - sendall (same round) | {min(sw) * 1e6 / n:.2f} | "
          f"{statistics.median(sw) * 1e6 / n:.2f} | {min(sc) * 1e6 / n:.2f} | "
          f"{statistics.median(sc) * 1e6 / n:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
