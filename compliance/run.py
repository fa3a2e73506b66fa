#!/usr/bin/env python3
"""Run the Autobahn|TestSuite against wsclient (the client side) and grade the result.

Starts ``wstest -m fuzzingserver`` on 127.0.0.1 with a free port and a generated
spec, lets an echo client (``compliance/drivers.py``) play every selected case,
asks the server to write its reports, then reads ``<report-dir>/index.json`` and
prints per-group counts. The exit status is 0 only when every selected case is
clean: behavior OK or INFORMATIONAL, and behaviorClose OK (or INFORMATIONAL).

Usage (see docs/compliance.md)::

    bash .ci/autobahn.sh                      # once: the suite in a Python 2.7 venv
    python compliance/run.py                  # cases 1.* .. 10.*
    python compliance/run.py --cases "5.*,6.4.*" --exclude "9.*"
    python compliance/run.py --sample-12-13 2 # plus 2 cases of each 12.x / 13.x sub-group

The server's control endpoints (``/getCaseCount``, ``/getCaseInfo``,
``/updateReports``) are spoken to with a minimal WebSocket client of this file,
so that a broken library under test cannot break the bookkeeping.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The checkout's wsclient comes first, installed or not (the script dir is already on sys.path).
sys.path.insert(1, str(REPO))

from drivers import DRIVERS, Driver  # noqa: E402

DEFAULT_CASES = ",".join(f"{group}.*" for group in range(1, 11))
GROUPS = tuple(range(1, 14))
BEHAVIORS = ("OK", "NON-STRICT", "FAILED", "INFORMATIONAL", "UNIMPLEMENTED")
#: behavior values that count as clean.
CLEAN_BEHAVIORS = frozenset({"OK", "INFORMATIONAL"})
#: behaviorClose values that count as clean (INFORMATIONAL: cases 7.1.6, 7.13.x grade nothing).
CLEAN_CLOSE = frozenset({"OK", "INFORMATIONAL"})


class RunnerError(Exception):
    """The run itself could not be carried out (no wstest, server died, ...)."""


# --------------------------------------------------------------------------- control client


def _recv_exact(sock: socket.socket, buf: bytearray, n: int, deadline: float) -> bytes:
    """Return the first ``n`` bytes of ``buf``, reading more from ``sock`` as needed."""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("control connection timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("control connection closed early")
        buf += chunk
    data = bytes(buf[:n])
    del buf[:n]
    return data


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A single final client frame (payload at most 125 bytes: control use only)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def control_request(port: int, resource: str, timeout: float) -> list[str]:
    """Open ``ws://127.0.0.1:port/resource``, collect its text messages until the server closes."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {resource} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode("ascii"))
        raw = b""
        while b"\r\n\r\n" not in raw:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise RunnerError(f"{resource}: connection closed during the handshake")
            raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RunnerError(f"{resource}: no upgrade: {head[:200]!r}")
        buf = bytearray(rest)
        messages: list[str] = []
        pieces: list[bytes] = []
        while True:
            b0, b1 = _recv_exact(sock, buf, 2, deadline)
            opcode, length = b0 & 0x0F, b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", _recv_exact(sock, buf, 2, deadline))
            elif length == 127:
                (length,) = struct.unpack("!Q", _recv_exact(sock, buf, 8, deadline))
            mask = _recv_exact(sock, buf, 4, deadline) if b1 & 0x80 else b""
            payload = _recv_exact(sock, buf, length, deadline)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                try:
                    sock.sendall(_masked_frame(0x8, payload[:2]))
                except OSError:
                    pass
                return messages
            if opcode == 0x9:
                sock.sendall(_masked_frame(0xA, payload))
            elif opcode in (0x0, 0x1, 0x2):
                pieces.append(payload)
                if b0 & 0x80:
                    messages.append(b"".join(pieces).decode("utf-8"))
                    pieces.clear()


# --------------------------------------------------------------------------- the server


def find_wstest(explicit: str | None) -> str:
    """Locate ``wstest``: ``--wstest``, ``$AUTOBAHN_WSTEST``, the venv of .ci/autobahn.sh, PATH."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RunnerError(f"--wstest {explicit}: not an executable file")
        return explicit
    venv = os.environ.get("AUTOBAHN_VENV", "/opt/autobahn-venv")
    for candidate in (os.environ.get("AUTOBAHN_WSTEST"), f"{venv}/bin/wstest"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("wstest")
    if found:
        return found
    raise RunnerError("wstest not found: run `bash .ci/autobahn.sh` or pass --wstest")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FuzzingServer:
    """``wstest -m fuzzingserver`` as a child process, stopped on exit."""

    def __init__(self, wstest: str, spec: dict[str, Any], workdir: Path, log_path: Path) -> None:
        """Write the spec into ``workdir``; the server's output goes to ``log_path``."""
        self.wstest = wstest
        self.spec_path = workdir / "fuzzingserver.json"
        self.spec_path.write_text(json.dumps(spec, indent=2))
        self.workdir = workdir
        self.log_path = log_path
        self.port = urllib.parse.urlsplit(spec["url"]).port or 80
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FuzzingServer:
        """Start the server and wait until it accepts connections."""
        log = self.log_path.open("wb")
        # -u 0: no embedded web server (its default port 8080 could be taken).
        self.proc = subprocess.Popen(
            [self.wstest, "-m", "fuzzingserver", "-s", str(self.spec_path), "-u", "0"],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RunnerError(f"fuzzing server did not listen on {self.port} within 60 s") from None
                time.sleep(0.1)

    def check_alive(self) -> None:
        """Raise :class:`RunnerError` (with the end of its log) if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RunnerError(f"fuzzing server exited with {self.proc.returncode}:\n{tail}")

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server (SIGTERM, then SIGKILL), by its own pid."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- case selection


def case_key(case_id: str) -> tuple[int, ...]:
    """Sort key of a case id such as ``"9.1.6"``."""
    return tuple(int(part) for part in case_id.split("."))


def split_patterns(text: str | None) -> list[str]:
    """``"1.*, 2.1.*"`` -> ``["1.*", "2.1.*"]``."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def sample_compression_cases(case_ids: list[str], per_subgroup: int) -> set[str]:
    """Keep ``per_subgroup`` cases of every 12.x / 13.x sub-group; other cases as they are.

    Within a sub-group (18 cases: message sizes 16 B .. 128 KiB, then auto-fragmented
    ones) the picks are spread evenly, and the starting point moves on by one from
    one sub-group to the next, so that together the sub-groups cover every size and
    fragmentation setting instead of always the same (and the heaviest) few.
    """
    keep = {c for c in case_ids if case_key(c)[0] not in (12, 13)}
    subgroups: dict[tuple[int, ...], list[str]] = {}
    for c in case_ids:
        if case_key(c)[0] in (12, 13):
            subgroups.setdefault(case_key(c)[:2], []).append(c)
    for rotation, name in enumerate(sorted(subgroups)):
        members = sorted(subgroups[name], key=case_key)
        k = min(per_subgroup, len(members))
        step = len(members) / k
        keep.update(members[(rotation + int(i * step)) % len(members)] for i in range(k))
    return keep


# --------------------------------------------------------------------------- running cases


@dataclasses.dataclass
class CaseRun:
    """What the client side saw for one case."""

    index: int
    case_id: str
    outcome: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    received: int = 0
    echoed: int = 0


def run_one(driver_cls: type[Driver], url: str, compression: bool, timeout: float) -> CaseRun:
    """Run one case in a worker thread; abort the connection if it outlives ``timeout``."""
    driver = driver_cls(compression=compression)
    result = CaseRun(index=0, case_id="")

    def work() -> None:
        try:
            result.outcome = driver.run_case(url)
        except Exception as exc:  # most bad-input cases end in an exception: that is fine
            result.outcome = f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    worker = threading.Thread(target=work, name="autobahn-case", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        result.timed_out = True
        driver.abort()
        worker.join(15)
        if worker.is_alive():
            result.outcome = f"HUNG: still running {timeout + 15:g} s after the start, even after abort()"
        else:
            result.outcome = f"TIMEOUT after {timeout:g} s (aborted); then: {result.outcome}"
    result.seconds = time.monotonic() - started
    result.received, result.echoed = driver.received, driver.echoed
    return result


# --------------------------------------------------------------------------- the report


def short(value: object, limit: int = 400) -> str:
    """``repr``-ish one-line rendering, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 5] + " ..."


def case_is_clean(entry: dict[str, Any] | None) -> bool:
    """True for behavior OK/INFORMATIONAL with behaviorClose OK/INFORMATIONAL."""
    return (
        entry is not None
        and entry.get("behavior") in CLEAN_BEHAVIORS
        and entry.get("behaviorClose") in CLEAN_CLOSE
    )


def print_table(selected: list[str], results: dict[str, Any]) -> None:
    """Per-group counts of behavior and behaviorClose."""
    columns = ("cases", *BEHAVIORS, "missing", "close OK", "close other")
    print(f"{'group':>5} " + " ".join(f"{c:>13}" for c in columns))
    totals: Counter[str] = Counter()
    for group in GROUPS:
        ids = [c for c in selected if case_key(c)[0] == group]
        if not ids:
            continue
        row: Counter[str] = Counter(cases=len(ids))
        for c in ids:
            entry = results.get(c)
            if entry is None:
                row["missing"] += 1
                row["close other"] += 1
                continue
            row[entry["behavior"] if entry["behavior"] in BEHAVIORS else "missing"] += 1
            row["close OK" if entry.get("behaviorClose") in CLEAN_CLOSE else "close other"] += 1
        totals.update(row)
        print(f"{group:>5} " + " ".join(f"{row[c]:>13}" for c in columns))
    print(f"{'all':>5} " + " ".join(f"{totals[c]:>13}" for c in columns))


def print_details(report_dir: Path, case_id: str, entry: dict[str, Any]) -> None:
    """The parts of a case's own JSON report that tell what was expected and what happened."""
    path = report_dir / entry["reportfile"]
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"      (no case report {path}: {exc})")
        return
    for key in ("description", "expectation", "result", "resultClose"):
        print(f"      {key}: {short(report.get(key, ''))}")
    print(f"      expected: {short(report.get('expected'))}")
    print(f"      expectedClose: {short(report.get('expectedClose'))}")
    print(f"      received: {short(report.get('received'))}")
    closing = {
        k: report.get(k)
        for k in ("closedByMe", "failedByMe", "droppedByMe", "wasClean", "wasNotCleanReason",
                  "localCloseCode", "localCloseReason", "remoteCloseCode", "remoteCloseReason",
                  "wasCloseHandshakeTimeout", "wasServerConnectionDropTimeout")
    }
    print(f"      close: {short(closing)}")
    wirelog = report.get("wirelog") or []
    tail = [w for w in wirelog if w and w[0] in ("RF", "TF", "KL", "TI", "CT", "CTE", "DROP", "TO")][-6:]
    if tail:
        print(f"      last frames (RF=received by server, TF=sent by server): {short(tail, 700)}")


def grade(
    report_dir: Path, agent: str, selected: list[str], runs: dict[str, CaseRun], details: int
) -> int:
    """Print the table and the non-clean cases; return the number of non-clean cases."""
    index_path = report_dir / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise RunnerError(f"cannot read {index_path}: {exc}") from exc
    results: dict[str, Any] = index.get(agent, {})
    print()
    print_table(selected, results)
    bad = [c for c in selected if not case_is_clean(results.get(c))]
    if not bad:
        print(f"\nall {len(selected)} selected cases clean")
        return 0
    print(f"\n{len(bad)} non-clean case(s) (behavior / behaviorClose / client side):")
    for n, case_id in enumerate(bad):
        entry = results.get(case_id)
        run = runs.get(case_id)
        client = f"{run.outcome} [{run.seconds:.1f} s]" if run else "not run"
        if entry is None:
            print(f"  {case_id:<9} MISSING from the report / client: {short(client, 200)}")
            continue
        print(f"  {case_id:<9} {entry['behavior']} / {entry['behaviorClose']}"
              f" / remote close code {entry.get('remoteCloseCode')} / client: {short(client, 200)}")
        if n < details:
            print_details(report_dir, case_id, entry)
    if len(bad) > details:
        print(f"  (details shown for the first {details}; see {report_dir} or use --details)")
    return len(bad)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of the runner."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help='comma-separated case patterns (default "1.*,...,10.*")')
    parser.add_argument("--exclude", default="", help="comma-separated case patterns not to run")
    parser.add_argument("--sample-12-13", type=int, default=None, metavar="K",
                        help="add the compression groups 12 and 13, but only K cases"
                             " (spread evenly) of each of their sub-groups 12.1 .. 13.7")
    parser.add_argument("--report-dir", type=Path, default=HERE / "reports" / "clients",
                        help="where the server writes its reports (default compliance/reports/clients)")
    parser.add_argument("--agent", default=None, help="agent name in the reports (default: the driver's)")
    parser.add_argument("--no-compression", action="store_true",
                        help="do not offer permessage-deflate")
    parser.add_argument("--case-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="abort a case's connection after this long (default 120)")
    parser.add_argument("--details", type=int, default=25, metavar="N",
                        help="print the case report excerpt of the first N non-clean cases (default 25)")
    parser.add_argument("--wstest", default=None, help="path of wstest (default: see docs/compliance.md)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case as it runs")
    parser.add_argument("--log-level", default=None, metavar="LEVEL",
                        help="show the library's log records (logger 'wsclient') at LEVEL, e.g. DEBUG")
    # For comparison with other libraries (docs/compliance.md); not part of the CI interface.
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="wsclient", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sample_12_13 is not None and args.sample_12_13 < 1:
        parser.error("--sample-12-13 must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases; exit 0 when all are clean, 1 when not, 2 when the run failed."""
    args = parse_args(argv)
    if args.log_level:
        logging.basicConfig(format="    %(threadName)s %(name)s %(levelname)s: %(message)s")
        logging.getLogger("wsclient").setLevel(args.log_level.upper())
    driver_cls = DRIVERS[args.driver]
    agent: str = args.agent or driver_cls.name
    compression = not args.no_compression
    patterns = split_patterns(args.cases)
    if args.sample_12_13 is not None:
        patterns += [p for p in ("12.*", "13.*") if p not in patterns]
    if not patterns:
        print("no cases selected", file=sys.stderr)
        return 2
    excludes = split_patterns(args.exclude)
    report_dir: Path = args.report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in (report_dir / "index.json", report_dir / "index.html"):
        stale.unlink(missing_ok=True)

    started = time.monotonic()
    try:
        wstest = find_wstest(args.wstest)
        port = free_port()
        spec = {
            "url": f"ws://127.0.0.1:{port}",
            "outdir": str(report_dir),
            "cases": patterns,
            "exclude-cases": excludes,
            "exclude-agent-cases": {},
            "options": {"failByDrop": False},
        }
        with tempfile.TemporaryDirectory(prefix="autobahn-") as tmp, \
                FuzzingServer(wstest, spec, Path(tmp), report_dir / "wstest.log") as server:
            count = int(json.loads(control_request(port, "/getCaseCount", 30)[0]))
            ids: dict[int, str] = {}
            for i in range(1, count + 1):
                info = json.loads(control_request(port, f"/getCaseInfo?case={i}", 30)[0])
                ids[i] = info["id"]
            chosen = set(ids.values())
            if args.sample_12_13 is not None:
                chosen = sample_compression_cases(list(ids.values()), args.sample_12_13)
            order = [i for i in sorted(ids) if ids[i] in chosen]
            selected = [ids[i] for i in order]
            print(f"wstest: {wstest}  port {port}  driver {args.driver}  agent {agent!r}  "
                  f"compression {'offered' if compression else 'off'}")
            print(f"cases: {','.join(patterns)}" + (f"  excluding {','.join(excludes)}" if excludes else "")
                  + f"  -> {len(selected)} of {count} to run")
            runs: dict[str, CaseRun] = {}
            quoted_agent = urllib.parse.quote(agent)
            done_groups: set[int] = set()
            for n, i in enumerate(order, 1):
                server.check_alive()
                case_id = ids[i]
                url = f"ws://127.0.0.1:{port}/runCase?case={i}&agent={quoted_agent}"
                run = run_one(driver_cls, url, compression, args.case_timeout)
                run.index, run.case_id = i, case_id
                runs[case_id] = run
                group = case_key(case_id)[0]
                if args.verbose or run.timed_out:
                    print(f"  [{n:>3}/{len(order)}] {case_id:<9} {run.seconds:6.2f} s  in/out {run.received}/{run.echoed}"
                          f"  {short(run.outcome, 160)}", flush=True)
                elif group not in done_groups and (n == len(order) or case_key(ids[order[n]])[0] != group):
                    done_groups.add(group)
                    print(f"  group {group} done ({n}/{len(order)}, {time.monotonic() - started:.0f} s)",
                          flush=True)
            control_request(port, f"/updateReports?agent={quoted_agent}", 600)
        hung = [r.case_id for r in runs.values() if r.outcome.startswith("HUNG")]
        bad = grade(report_dir, agent, selected, runs, args.details)
    except (RunnerError, OSError, ValueError, LookupError) as exc:  # OSError: control connection
        print(f"autobahn run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    slowest = sorted(runs.values(), key=lambda r: r.seconds, reverse=True)[:3]
    print(f"\n{len(selected)} cases in {elapsed:.0f} s (slowest: "
          + ", ".join(f"{r.case_id} {r.seconds:.1f} s" for r in slowest) + ")")
    print(f"reports: {report_dir}/index.html")
    if hung:
        print(f"WARNING: client threads still running for {', '.join(hung)}")
    print(f"autobahn: {len(selected)} cases, {len(selected) - bad} clean, {bad} not clean")
    sys.stdout.flush()
    if hung:
        os._exit(1)  # a hung library thread must not keep the process alive
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
