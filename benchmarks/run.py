"""Run the benchmark suite and write a Markdown table.

    python -m benchmarks.run [--rounds 3] [--quick] [--cells recv-16,echo-16]
                             [--libs websocket-client,websockets,wsclient]
                             [--compression] [--out docs/benchmarks-results.md]

Each measurement is a fresh server process and a fresh driver process. Throughput cells put
the client on one core and the server on another (``taskset -c 0`` / ``-c 1``); latency cells
(echo, connect) put both on the same core. Rounds are interleaved: in each round every cell runs
every library once (A B C, then B C A, C A B ...: interleaved, and no library always
first). A cell's figure is the median over rounds of the ratio
to websocket-client within the same round; absolute numbers and the server's CPU are reported
beside it. Progress goes to stderr; the table to ``--out`` (and stdout).

The compression cells of issue 4 (``*-z``; named in ``--cells`` or all added by
``--compression``) run websockets and wsclient only, each twice per round: with
permessage-deflate negotiated (``<lib>+deflate``) and with ``compression=None``. Their figure
is the ratio compressed / uncompressed for the same library in the same round.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.cells import (
    CELLS,
    COMPRESSION_CELLS,
    COMPRESSION_LIBRARIES,
    DEFAULT_CELLS,
    DEFLATE,
    LIBRARIES,
    PURE_PYTHON_SEND_16M_TARGET,
    REFERENCE,
    WSCLIENT_PY,
    Cell,
    X,
    split_variant,
)

__all__ = ["Measurement", "main", "render"]

ROOT = Path(__file__).resolve().parent.parent
DRIVER_TIMEOUT = 900.0
MIB = 1 << 20
DASH = "\u2013"


@dataclass
class Measurement:
    """One library in one cell in one round."""

    round: int
    cell: str
    lib: str
    result: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _clean_env() -> dict[str, str]:
    """The environment without proxy variables: every client connects directly."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Runner:
    """Starts servers and drivers with the right pinning and collects their results."""

    def __init__(self, *, quick: bool, pin: bool, client_cpu: int, server_cpu: int,
                 profile_dir: Path | None, py_spy_dir: Path | None, count: int | None = None,
                 py_spy_rate: int = 1000) -> None:
        self.quick = quick
        self.pin = pin
        self.client_cpu = client_cpu
        self.server_cpu = server_cpu
        self.profile_dir = profile_dir
        self.py_spy_dir = py_spy_dir
        self.count = count
        self.py_spy_rate = py_spy_rate
        self.env = _clean_env()

    def _pinned(self, cpu: int, argv: list[str]) -> list[str]:
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv

    def _server_argv(self, cell: Cell, n: int) -> list[str]:
        mode = {"connect": "handshake", "scale": "recv", "storm": "idle"}.get(cell.kind, cell.kind)
        argv = [sys.executable, "-m", "benchmarks.server", "--mode", mode,
                "--opcode", cell.opcode, "--size", str(cell.size), "--count", str(n)]
        if cell.kind == "scale":
            argv.append("--threaded")
        if cell.payload != "fixed":
            argv += ["--payload", cell.payload]
        if cell.compression:  # the same server for both runs: the client's offer decides
            argv.append("--deflate")
        return argv

    def measure(self, rnd: int, cell: Cell, lib: str) -> Measurement:
        """Start a server, run one driver against it, stop the server."""
        m = Measurement(rnd, cell.name, lib)
        n = self.count or cell.n(self.quick)
        server_cpu = self.client_cpu if cell.placement == "same" else self.server_cpu
        server = subprocess.Popen(self._pinned(server_cpu, self._server_argv(cell, n)),
                                  cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("PORT "):
                m.error = "server did not start"
                return m
            url = f"ws://127.0.0.1:{int(line.split()[1])}/"
            base, compress = split_variant(lib)
            argv = [sys.executable, "-m", "benchmarks.driver", "--lib", base,
                    "--cell", cell.name, "--url", url, "--count", str(n)]
            if compress:
                argv.append("--compress")
            if cell.kind == "scale":
                argv += ["--connections", str(cell.conns(self.quick))]
            if self.profile_dir is not None:
                argv += ["--profile", str(self.profile_dir / f"{lib}-{cell.name}.prof")]
            command = self._pinned(self.client_cpu, argv)
            if self.py_spy_dir is not None:
                command = ["py-spy", "record", "--format", "raw", "--rate", str(self.py_spy_rate),
                           "--threads", "--nonblocking", "-o", str(self.py_spy_dir / f"{lib}-{cell.name}.txt"),
                           "--", *command]
            try:
                done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True,
                                      text=True, timeout=DRIVER_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                m.error = f"timed out after {DRIVER_TIMEOUT:.0f} s"
                return m
            for out in done.stdout.splitlines():
                if out.startswith("RESULT "):
                    m.result = json.loads(out[7:])
                elif out.startswith("ERROR "):
                    m.error = json.loads(out[6:])
            if not m.result and m.error is None:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                m.error = f"exit {done.returncode}: {tail}"
            return m
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                out, _ = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                out, _ = server.communicate()
            for out_line in out.splitlines():
                if out_line.startswith("STATS "):
                    m.server = json.loads(out_line[6:])


# ---------------------------------------------------------------------------------------
# Report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _by(ms: list[Measurement]) -> dict[tuple[str, str], list[Measurement]]:
    table: dict[tuple[str, str], list[Measurement]] = {}
    for m in ms:
        table.setdefault((m.cell, m.lib), []).append(m)
    return table


def _ratios(ms: list[Measurement], cell: str, lib: str, ref: str,
            key: str = "elapsed") -> list[float]:
    """Per round: ref's time / lib's time (> 1: lib is faster); ``key`` elapsed or cpu."""
    rounds: dict[int, dict[str, float]] = {}
    for m in ms:
        if m.cell == cell and m.result.get(key):
            rounds.setdefault(m.round, {})[m.lib] = m.result[key]
    return [r[ref] / r[lib] for r in rounds.values() if ref in r and lib in r]


def _fmt_ratio(values: list[float], suffix: str = X) -> str:
    if not values:
        return "—"
    med = _median(values)
    if len(values) == 1:
        return f"{med:.2f}{suffix}"
    return f"**{med:.2f}{suffix}** ({min(values):.2f}{DASH}{max(values):.2f})"


def _versions() -> dict[str, str]:
    out = {}
    # wsclient's distribution is named python-wsclient (the import name stays wsclient).
    for name, dist in (("websocket-client", "websocket-client"), ("websockets", "websockets"),
                       ("wsclient", "python-wsclient")):
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        rev = ""
    if rev:
        out["wsclient"] += f" (checkout {rev})"
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compression_variants(libs: list[str]) -> list[str]:
    """What a compression cell runs: each compressing library plain, then ``+deflate``."""
    return [lib + suffix for lib in libs if lib in COMPRESSION_LIBRARIES for suffix in ("", DEFLATE)]


def _wire(m: Measurement) -> int | None:
    """Bytes on the wire in the payload's direction after the handshake (server's count)."""
    if not m.server:
        return None
    key = "bytes_written" if CELLS[m.cell].kind == "recv" else "bytes_read"
    return m.server.get(key)


def _compression_ratios(ms: list[Measurement], cell: str, lib: str, key: str) -> list[float]:
    """Per round: ``lib+deflate`` / ``lib`` (> 1: compression costs more) for ``key``:
    ``elapsed``, ``cpu`` or ``wire``."""
    rounds: dict[int, dict[str, float]] = {}
    for m in ms:
        if m.cell != cell or not m.result.get("elapsed"):
            continue
        value = _wire(m) if key == "wire" else m.result.get(key)
        if value:
            rounds.setdefault(m.round, {})[m.lib] = value
    return [r[lib + DEFLATE] / r[lib] for r in rounds.values() if lib in r and lib + DEFLATE in r]


def _render_compression(ms: list[Measurement], cells: list[Cell], meta: dict[str, Any]) -> list[str]:
    """The compression cells: absolute numbers per variant, then the deflate / plain ratios."""
    if not cells:
        return []
    variants = compression_variants(meta["libs"])
    by = _by(ms)
    lines = ["", ("### Compression: permessage-deflate vs `compression=None`, same library "
                  "(median over rounds; spread = (max - min) / median)"), "",
             ("| cell | library | compression | time (s) | spread | messages/s | MiB/s payload | "
              "wire MiB | payload / wire | client CPU (s) | server CPU (% of client time) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        for variant in variants:
            got = [m for m in by.get((cell.name, variant), []) if m.result.get("elapsed")]
            if not got:
                continue
            lib, compress = split_variant(variant)
            times = [m.result["elapsed"] for m in got]
            elapsed = _median(times)
            spread = f"{100 * (max(times) - min(times)) / elapsed:.0f} %" if len(times) > 1 else "—"
            count = got[0].result["messages"]
            payload = got[0].result["payload_bytes"]
            wires = [w for w in (_wire(m) for m in got) if w]
            wire = _median([float(w) for w in wires]) if wires else 0.0
            wire_s = f"{wire / MIB:.1f}" if wire else "—"
            shrink = f"{payload / wire:.2f}{X}" if wire else "—"
            cpu = _median([m.result["cpu"] for m in got if "cpu" in m.result])
            server = _median([100 * m.server.get("cpu", 0.0) / m.result["elapsed"]
                              for m in got if m.server])
            lines.append(f"| {cell.title} | {lib} | {'deflate' if compress else 'none'} | "
                         f"{elapsed:.3f} | {spread} | {count / elapsed:,.0f} | "
                         f"{payload / elapsed / MIB:.1f} | {wire_s} | {shrink} | {cpu:.3f} | "
                         f"{server:.0f} % |")
    libs = [lib for lib in meta["libs"] if lib in COMPRESSION_LIBRARIES]
    lines += ["", (f"#### Cost of compression: deflate / none, same library, same round "
                   f"(median, min{DASH}max; above 1{X} compression is slower)"), "",
              "| cell | library | time | client CPU | bytes on the wire |",
              "|---|---|---|---|---|"]
    for cell in cells:
        for lib in libs:
            row = [_fmt_ratio(_compression_ratios(ms, cell.name, lib, key))
                   for key in ("elapsed", "cpu", "wire")]
            if any(r != "—" for r in row):
                lines.append(f"| {cell.title} | {lib} | " + " | ".join(row) + " |")
    return lines


def render(ms: list[Measurement], meta: dict[str, Any]) -> str:
    """The Markdown report: ratios, absolute numbers, idle memory, errors."""
    libs: list[str] = meta["libs"]
    others = [lib for lib in libs if lib != REFERENCE]
    all_cells = [CELLS[c] for c in meta["cells"]]
    cells = [c for c in all_cells if not c.compression]
    by = _by(ms)
    lines = [
        (f"Measured {meta['date']} on {meta['machine']}; Python {meta['python']}; "
         + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "."),
        (f"{meta['rounds']} interleaved round(s){', quick counts' if meta['quick'] else ''}; "
         f"pinning: {meta['pinning']}; load average before/after: "
         f"{meta['load_before']} / {meta['load_after']}; wall time {meta['wall']:.0f} s."),
    ]
    masking = sorted({m.result["masking"] for m in ms if m.lib == "wsclient" and m.result.get("masking")})
    if masking:
        lines[-1] += f" wsclient masking: {', '.join(masking)}."
    if any(c.kind != "idle" for c in cells):
        lines += [
            "",
            f"### Ratio to {REFERENCE} (same round; median, with min{DASH}max over rounds)",
            "",
            "| cell | target (wsclient) | " + " | ".join(others) + " |",
            "|---|---|" + "---|" * len(others),
        ]
    for cell in cells:
        if cell.kind == "idle":
            continue
        row = [_fmt_ratio(_ratios(ms, cell.name, lib, REFERENCE)) for lib in others]
        lines.append(f"| {cell.title} | {cell.target} | " + " | ".join(row) + " |")
        if "raw" in cell.extras and "raw" in meta["extras"]:
            raw_row = [_fmt_ratio([100 * r for r in _ratios(ms, cell.name, lib, "raw")], " %")
                       for lib in others]
            lines.append(f"| … as % of a raw socket (raw = "
                         f"{_fmt_ratio(_ratios(ms, cell.name, 'raw', REFERENCE))}) | ≥ 90 % | "
                         + " | ".join(raw_row) + " |")
        if WSCLIENT_PY in cell.extras and WSCLIENT_PY in meta["extras"]:
            py_row = [_fmt_ratio(_ratios(ms, cell.name, WSCLIENT_PY, REFERENCE))
                      if lib == "wsclient" else "—" for lib in others]
            lines.append(f"| … wsclient with pure-Python masking (`WSCLIENT_SPEEDUPS=0`) | "
                         f"{PURE_PYTHON_SEND_16M_TARGET} | " + " | ".join(py_row) + " |")
    if any(m.result.get("cpu") for m in ms if not CELLS[m.cell].compression):
        lines += ["", f"### Ratio of client CPU time to {REFERENCE} (same round; median, "
                      f"min{DASH}max): less disturbed by other load on the machine, blind to "
                      "waiting", "",
                  "| cell | " + " | ".join(others) + " |",
                  "|---|" + "---|" * len(others)]
        for cell in cells:
            if cell.kind != "idle":
                row = [_fmt_ratio(_ratios(ms, cell.name, lib, REFERENCE, "cpu")) for lib in others]
                lines.append(f"| {cell.title} | " + " | ".join(row) + " |")
            if WSCLIENT_PY in cell.extras and WSCLIENT_PY in meta["extras"]:
                py_row = [_fmt_ratio(_ratios(ms, cell.name, WSCLIENT_PY, REFERENCE, "cpu"))
                          if lib == "wsclient" else "—" for lib in others]
                lines.append("| … wsclient with pure-Python masking | " + " | ".join(py_row) + " |")
    idle = [c for c in cells if c.kind == "idle"]
    if idle:
        lines += ["", "### Idle connections (median over rounds)", "",
                  "| cell | library | RSS KiB / conn | tracemalloc KiB / conn | threads / conn |",
                  "|---|---|---|---|---|"]
        for cell in idle:
            for lib in libs:
                idle_results = [m.result for m in by.get((cell.name, lib), []) if m.result]
                if not idle_results:
                    continue
                rss = _median([r["rss_kib_per_conn"] for r in idle_results])
                traced = _median([r["traced_kib_per_conn"] for r in idle_results])
                threads = _median([r["threads_per_conn"] for r in idle_results])
                lines.append(f"| {cell.title} | {lib} | {rss:.1f} | {traced:.1f} | "
                             f"{threads:.2f} |")
    scale = [c for c in cells if c.kind in ("scale", "storm")]
    if scale:
        lines += ["", "### Many connections (median over rounds)", "",
                  ("| cell | library | open all (s) | messages/s (scale) or opens/s (storm) | "
                   "RSS KiB / conn | threads / conn |"),
                  "|---|---|---|---|---|---|"]
        for cell in scale:
            for lib in libs:
                found = [m.result for m in by.get((cell.name, lib), []) if m.result.get("elapsed")]
                if not found:
                    continue
                per_second = _median([r["messages"] / r["elapsed"] for r in found])
                if cell.kind == "scale":
                    opened_s = f"{_median([r['open_seconds'] for r in found]):.2f}"
                    rss_s = f"{_median([r['rss_kib_per_conn'] for r in found]):.1f}"
                    threads_s = f"{_median([r['threads_per_conn'] for r in found]):.2f}"
                else:
                    opened_s = rss_s = threads_s = "—"
                lines.append(f"| {cell.title} | {lib} | {opened_s} | {per_second:,.0f} | {rss_s} | {threads_s} |")
    if cells:
        lines += ["", "### Absolute numbers (median over rounds; spread = (max - min) / median)", "",
                  ("| cell | library | time (s) | spread | messages/s | MiB/s | µs / message | "
                   "client CPU (s) | server CPU (% of client time) |"),
                  "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        if cell.kind == "idle":
            continue
        for lib in [*libs, *[e for e in cell.extras if e in meta["extras"]]]:
            got = [m for m in by.get((cell.name, lib), []) if m.result.get("elapsed")]
            if not got:
                continue
            times = [m.result["elapsed"] for m in got]
            elapsed = _median(times)
            spread = f"{100 * (max(times) - min(times)) / elapsed:.0f} %" if len(times) > 1 else "—"
            count = got[0].result["messages"]
            payload = got[0].result["payload_bytes"]
            server = _median([100 * m.server.get("cpu", 0.0) / m.result["elapsed"]
                              for m in got if m.server])
            mib = f"{payload / elapsed / MIB:.1f}" if payload else "—"
            cpus = [m.result["cpu"] for m in got if "cpu" in m.result]
            cpu = f"{_median(cpus):.3f}" if cpus else "—"
            lines.append(f"| {cell.title} | {lib} | {elapsed:.3f} | {spread} | {count / elapsed:,.0f} | "
                         f"{mib} | {1e6 * elapsed / count:.1f} | {cpu} | {server:.0f} % |")
    lines += _render_compression(ms, [c for c in all_cells if c.compression], meta)
    errors = [m for m in ms if m.error]
    if errors:
        lines += ["", "### Errors", ""]
        lines += [f"- round {m.round}, {m.cell}, {m.lib}: {m.error}" for m in errors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="scaled-down counts (smoke test)")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                        help="comma-separated, from: " + ", ".join(CELLS))
    parser.add_argument("--compression", action="store_true",
                        help="add the compression cells: " + ", ".join(COMPRESSION_CELLS))
    parser.add_argument("--libs", default=",".join(LIBRARIES),
                        help=f"comma-separated; {REFERENCE} is added (the reference) unless profiling")
    parser.add_argument("--count", type=int, help="override every cell's count (profiling)")
    parser.add_argument("--py-spy-rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-socket baseline")
    parser.add_argument("--no-pure", action="store_true",
                        help=f"skip {WSCLIENT_PY} (wsclient with pure-Python masking) in send-16m")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--profile-dir", type=Path,
                        help="cProfile every driver (all threads) into DIR/<lib>-<cell>.prof")
    parser.add_argument("--py-spy-dir", type=Path,
                        help="sample every driver with py-spy into DIR/<lib>-<cell>.txt")
    args = parser.parse_args(argv)

    cells = [c for c in args.cells.split(",") if c]
    if args.compression:
        cells += [c for c in COMPRESSION_CELLS if c not in cells]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown cell(s): {', '.join(unknown)}")
    libs = [lib for lib in args.libs.split(",") if lib]
    profiling = args.profile_dir is not None or args.py_spy_dir is not None
    if REFERENCE not in libs and not profiling:  # a profiling pass needs no reference
        libs.insert(0, REFERENCE)
    extras = ([] if args.no_raw else ["raw"]) + ([] if args.no_pure else [WSCLIENT_PY])
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    for directory in (args.profile_dir, args.py_spy_dir):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
    runner = Runner(quick=args.quick, pin=pin, client_cpu=args.client_cpu,
                    server_cpu=args.server_cpu, profile_dir=args.profile_dir,
                    py_spy_dir=args.py_spy_dir, count=args.count,
                    py_spy_rate=args.py_spy_rate)

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.monotonic()
    ms: list[Measurement] = []
    for rnd in range(1, args.rounds + 1):
        for name in cells:
            cell = CELLS[name]
            if cell.compression:
                order = compression_variants(libs)
                if not order:
                    continue
            else:
                order = [*libs, *[e for e in cell.extras if e in extras]]
            # Rotate the order every round, so that no library always runs first.
            shift = (rnd - 1) % len(order)
            for lib in order[shift:] + order[:shift]:
                m = runner.measure(rnd, cell, lib)
                ms.append(m)
                if m.error:
                    summary = f"ERROR {m.error}"
                elif cell.kind == "idle":
                    summary = (f"{m.result['rss_kib_per_conn']:.1f} KiB RSS/conn, "
                               f"{m.result['threads_per_conn']:.2f} threads/conn")
                else:
                    summary = (f"{m.result['elapsed']:.3f} s, server CPU "
                               f"{m.server.get('cpu', 0.0):.3f} s")
                sys.stderr.write(f"round {rnd} {name:11} {lib:18} {summary}\n")
                sys.stderr.flush()
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}",
        "python": platform.python_version(),
        "versions": _versions(),
        "rounds": args.rounds,
        "quick": args.quick,
        "pinning": (f"throughput cells client on CPU {args.client_cpu}, server on CPU "
                    f"{args.server_cpu}; latency cells both on CPU {args.client_cpu}")
        if pin else "none",
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "wall": time.monotonic() - started,
        "libs": libs,
        "cells": cells,
        "extras": extras,
    }
    report = render(ms, meta)
    sys.stdout.write(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "measurements": [m.__dict__ for m in ms]},
                                        indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
