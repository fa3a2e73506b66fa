"""Experiment (issue 12): a 16 MiB message written in groups of fragments instead of whole.

Today the protocol encodes every 16 KiB fragment of a message (header + masked payload) and
the connection then writes them all: a 16 MiB message holds 16 MiB of fresh masked
fragments at once. Freed after the write, that memory goes back to the OS (glibc trims the
top of its heap), and the next message faults every page in again, which costs more than
the masking itself. Encoding and writing ``--group`` fragments at a time keeps the memory
in malloc's free lists instead.

Each variant runs in a fresh process pinned to CPU 0 (a process's malloc history changes
the result, see above) against ``benchmarks.server --mode send`` on CPU 1, in interleaved
rounds; ratios are to websocket-client in the same round.

``wsclient-grouped`` patches one connection's internals (``_protocol``, ``_send_lock``,
``_sock``, as of this checkout): it is a measurement of the change, not an API.

    python -m benchmarks.grouped_send --rounds 3 --count 64
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.cells import X, binary_payload

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("websocket-client", "wsclient", "wsclient-grouped")


def _no_progress() -> None:
    pass


def _grouped_sender(ws: Any, group: int) -> Callable[[bytes], None]:
    from wsclient._writer import sendmsg_all
    from wsclient.frames import encode_header, mask_payload

    proto = ws._protocol
    limit = proto.fragmentation_threshold

    def send(data: bytes) -> None:
        n = len(data)
        view = memoryview(data)
        with ws._send_lock:
            pieces: list[bytes] = []
            start = 0
            first = 2
            while start < n:
                stop = start + limit
                chunk = view[start:stop]
                key = proto._mask_key()
                pieces.append(encode_header(first | (0x80 if stop >= n else 0), len(chunk), key))
                pieces.append(mask_payload(chunk, key))
                first = 0
                start = stop
                if len(pieces) >= 2 * group:
                    sendmsg_all(ws._sock, pieces, _no_progress)
                    pieces = []
            if pieces:
                sendmsg_all(ws._sock, pieces, _no_progress)

    return send


def _one(variant: str, url: str, count: int, group: int) -> dict[str, float]:
    payload = binary_payload(16 << 20)
    if variant == "websocket-client":
        import websocket

        ws: Any = websocket.create_connection(url)
        send = ws.send_binary
    else:
        import wsclient

        ws = wsclient.connect(url, compression=None, max_received_frame_size=32 << 20)
        send = ws.send if variant == "wsclient" else _grouped_sender(ws, group)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        send(payload)
    if ws.recv() != "done":
        raise AssertionError("the server did not count every message")
    result = {"elapsed": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    ws.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--group", type=int, default=16, help="fragments per write")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # the child: one measurement
        os.sched_setaffinity(0, {0})
        print("RESULT " + json.dumps(_one(args.variant, args.url, args.count, args.group)))
        return 0

    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        order = VARIANTS[rnd % 3:] + VARIANTS[: rnd % 3]
        for variant in order:
            server = subprocess.Popen(
                ["taskset", "-c", "1", sys.executable, "-m", "benchmarks.server", "--mode", "send",
                 "--opcode", "binary", "--size", str(16 << 20), "--count", str(args.count)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None
            url = f"ws://127.0.0.1:{int(server.stdout.readline().split()[1])}/"
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.grouped_send", "--variant", variant, "--url", url,
                 "--count", str(args.count), "--group", str(args.group)],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=True).stdout
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=30)
            result = json.loads(out.split("RESULT ", 1)[1])
            results[variant].append(result)
            print(f"round {rnd + 1} {variant:18} {result['elapsed']:.3f} s, CPU {result['cpu']:.3f} s",
                  file=sys.stderr)
    ref = results["websocket-client"]
    print(f"# {args.rounds} rounds x {args.count} x 16 MiB; groups of {args.group} fragments; "
          f"load average before/after: {' '.join(f'{x:.2f}' for x in load_before)} / "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| variant | ms / message (median) | client CPU ms / message | ratio (wall) | ratio (CPU) |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        got = results[variant]
        wall = [r["elapsed"] / g["elapsed"] for r, g in zip(ref, got, strict=True)]
        cpu = [r["cpu"] / g["cpu"] for r, g in zip(ref, got, strict=True)]
        print(f"| {variant} | {statistics.median(g['elapsed'] for g in got) / args.count * 1e3:.1f} | "
              f"{statistics.median(g['cpu'] for g in got) / args.count * 1e3:.1f} | "
              f"{statistics.median(wall):.2f}{X} ({min(wall):.2f}-{max(wall):.2f}) | "
              f"{statistics.median(cpu):.2f}{X} ({min(cpu):.2f}-{max(cpu):.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
