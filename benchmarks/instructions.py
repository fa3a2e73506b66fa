"""Exact cost per operation, in instructions, for the cells that wall time measures poorly.

Wall-clock time on a shared VM swings by 10-20 % between runs, which hides a change of a
few per cent in the echo and connect cells. Callgrind (valgrind) counts the instructions a
process executes in user space exactly; repeat runs of wsclient's echo agree within about
5 % (its reader thread's park timer runs out more often under valgrind's slowdown). This
script runs each client twice under callgrind, once with ``--small`` operations and once
with ``--large``, and reports the difference divided by the difference in operations: the
cost of one operation, free of start-up, imports and the opening of the connection.

Workloads (against ``benchmarks.server``, started here):

``echo``
    one connection, ``n`` round trips of a 16-byte text message (``send`` then ``recv``);
``connect``
    ``n`` times: open a connection and close it (the closing handshake included).

Clients: ``raw`` (a plain socket writing a ready masked frame and reading the answer into
one buffer, with no parsing: the floor of any Python client), ``websocket-client``,
``websockets`` and ``wsclient`` (the C accelerator as installed; ``WSCLIENT_SPEEDUPS=0``
in the environment forces pure Python).

What it does not see: the kernel's share (system calls cost the same for every client
that makes the same calls; ``strace -c`` counts them) and waiting. It is a measure of a
client's own work, not a replacement for ``benchmarks.run``.

Needs valgrind (``apt-get install valgrind``). Takes about two minutes with the defaults::

    python -m benchmarks.instructions
    python -m benchmarks.instructions --workloads echo --libs raw,wsclient --small 200 --large 1200
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

LIBS = ("raw", "websocket-client", "websockets", "wsclient")
WORKLOADS = ("echo", "connect")
REFERENCE = "websocket-client"
_SERVER_MODE = {"echo": "echo", "connect": "handshake"}
_TOTALS = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


# --------------------------------------------------------------------------- the child side


def _raw_open(port: int) -> socket.socket:
    from benchmarks.driver import _handshake_request

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_handshake_request("127.0.0.1", port, "/"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed during the opening")
        head += chunk
    return sock


def _raw_close(sock: socket.socket) -> None:
    from benchmarks.driver import _masked

    sock.sendall(_masked(8, b"\x03\xe8"))
    while sock.recv(1 << 16):
        pass
    sock.close()


def child(lib: str, workload: str, port: int, n: int) -> None:
    """The measured process: ``n`` operations of ``workload`` with ``lib``."""
    url = f"ws://127.0.0.1:{port}/"
    if lib == "raw":
        from benchmarks.driver import _masked

        if workload == "echo":
            sock = _raw_open(port)
            frame = _masked(1, b"x" * 16)
            buf = bytearray(1 << 16)
            sendall, recv_into = sock.sendall, sock.recv_into
            for _ in range(n):
                sendall(frame)
                recv_into(buf)  # 18 bytes: one read on loopback
            _raw_close(sock)
        else:
            for _ in range(n):
                _raw_close(_raw_open(port))
        return
    from benchmarks.driver import OPENERS

    opener = OPENERS[lib]
    if workload == "echo":
        conn = opener(url, False)
        message = "x" * 16
        send, recv = conn.send_text, conn.recv
        for _ in range(n):
            send(message)
            if recv() != message:
                raise AssertionError("the echo came back different")
        conn.close()
    else:
        for _ in range(n):
            opener(url, False).close()


# --------------------------------------------------------------------------- the parent side


def _instructions(lib: str, workload: str, port: int, n: int, work: Path) -> int:
    out = work / f"{lib}-{workload}-{n}.callgrind"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, "-m", "benchmarks.instructions", "--child", lib, workload, str(port), str(n),
    ]
    done = subprocess.run(command, capture_output=True, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{lib} {workload} x{n} failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    match = _TOTALS.search(out.read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def _start_server(mode: str) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--mode", mode, "--opcode", "text", "--size", "16"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise RuntimeError(f"the benchmark server did not start: {line!r}")
    return server, int(line.split()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("LIB", "WORKLOAD", "PORT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated, from: " + ", ".join(LIBS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: echo, connect")
    parser.add_argument("--small", type=int, default=200, help="operations in the first run (default 200)")
    parser.add_argument("--large", type=int, default=800, help="operations in the second run (default 800)")
    args = parser.parse_args(argv)
    if args.child:
        lib, workload, port, n = args.child
        child(lib, workload, int(port), int(n))
        return
    libs = [x for x in args.libs.split(",") if x]
    workloads = [x for x in args.workloads.split(",") if x]
    for name in libs:
        if name not in LIBS:
            parser.error(f"unknown library {name!r}")
    for name in workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}")
    if not args.large > args.small >= 0:
        parser.error("--large must be greater than --small")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    print(f"instructions per operation, user space, callgrind; runs of {args.small} and {args.large}; "
          f"Python {sys.version.split()[0]}; WSCLIENT_SPEEDUPS={os.environ.get('WSCLIENT_SPEEDUPS', '(unset)')}")
    print()
    print("| workload | client | instructions per operation | ratio to websocket-client |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="wsclient-instructions-") as tmp:
        for workload in workloads:
            server, port = _start_server(_SERVER_MODE[workload])
            try:
                per: dict[str, float] = {}
                for lib in libs:
                    low = _instructions(lib, workload, port, args.small, Path(tmp))
                    high = _instructions(lib, workload, port, args.large, Path(tmp))
                    per[lib] = (high - low) / (args.large - args.small)
                for lib in libs:
                    ratio = f"{per[REFERENCE] / per[lib]:.2f}×" if REFERENCE in per else "—"  # noqa: RUF001
                    print(f"| {workload} | {lib} | {per[lib]:,.0f} | {ratio} |", flush=True)
            finally:
                server.terminate()
                server.wait(10)


if __name__ == "__main__":
    main()
