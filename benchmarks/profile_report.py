"""Summarise py-spy ``--format raw`` samples (as written by ``run.py --py-spy-dir``).

    python -m benchmarks.profile_report DIR/wsclient-recv-16.txt [--top 25] [--match wsclient]

Each line of a raw file is ``thread (tid);outer frame;...;inner frame COUNT``. py-spy records
only samples where the thread runs Python (idle and blocked threads are left out), so the
counts are CPU time. This prints, for the whole process and per thread: the functions with
the most *self* samples (the sample's innermost frame) and the most *inclusive* samples
(anywhere on the stack, counted once per sample), optionally only frames whose file matches
``--match``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

__all__ = ["load", "main"]

#: Innermost frames that mean "blocked", not "busy".
WAITS = ("Condition.wait ", "Event.wait ", "Thread._wait_for_tstate_lock ", "Thread.join ",
         "Queue.get ", "Semaphore.acquire ")

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: lines differ, functions don't."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    short = "/".join(match["file"].split("/")[-2:])
    return f"{match['func']} ({short})"


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    """Stacks per thread: ``{thread: [(frames outer-to-inner, samples), ...]}``."""
    threads: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        thread, frames = parts[0], [_name(f) for f in parts[1:]]
        threads.setdefault(thread, []).append((frames, int(count)))
    return threads


def _tables(stacks: list[tuple[list[str], int]], match: str | None,
            top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    total = sum(n for _, n in stacks)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    if match:
        own = Counter({k: v for k, v in own.items() if match in k})
        inclusive = Counter({k: v for k, v in inclusive.items() if match in k})
    return total, own.most_common(top), inclusive.most_common(top)


def _label(stacks: list[tuple[list[str], int]]) -> str:
    """A thread's role, from the outermost interesting frame of its busiest stack."""
    frames = max(stacks, key=lambda s: s[1])[0]
    for frame in frames:
        if not frame.startswith(("_bootstrap", "run (threading", "<module>", "_run_code",
                                 "_run_module")):
            return frame
    return frames[-1] if frames else "?"


def main(argv: list[str] | None = None) -> None:
    """Command line: print the tables as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--match", help="only functions whose name or file contains this")
    parser.add_argument("--exclude", action="append", default=["_find_and_load"],
                        help="drop samples with a frame containing this (default: imports)")
    parser.add_argument("--keep-waits", action="store_true",
                        help="keep samples whose innermost frame is a wait (py-spy cannot always "
                             "tell a thread blocked on a lock from a running one)")
    args = parser.parse_args(argv)
    out = sys.stdout
    for path in args.files:
        threads = {
            tid: kept for tid, stacks in load(path).items()
            if (kept := [(frames, n) for frames, n in stacks
                         if not any(x in f for f in frames for x in args.exclude)
                         and (args.keep_waits or not frames or not frames[-1].startswith(WAITS))])
        }
        everything = [s for stacks in threads.values() for s in stacks]
        total = sum(n for _, n in everything)
        out.write(f"## {path.name}: {total} samples\n\n")
        groups = [("all threads", everything)]
        groups += [(f"{tid}: {_label(stacks)}", stacks) for tid, stacks in threads.items()
                   if sum(n for _, n in stacks) >= total * 0.02]
        for title, stacks in groups:
            n, own, inclusive = _tables(stacks, args.match, args.top)
            out.write(f"### {title} ({n} samples, {100 * n / max(total, 1):.0f} %)\n\n")
            out.write("| self | % | function | | inclusive | % | function |\n")
            out.write("|---|---|---|---|---|---|---|\n")
            for i in range(max(len(own), len(inclusive))):
                left = (f"{own[i][1]} | {100 * own[i][1] / max(n, 1):.1f} | {own[i][0]}"
                        if i < len(own) else " | | ")
                right = (f"{inclusive[i][1]} | {100 * inclusive[i][1] / max(n, 1):.1f} | "
                         f"{inclusive[i][0]}" if i < len(inclusive) else " | | ")
                out.write(f"| {left} | | {right} |\n")
            out.write("\n")


if __name__ == "__main__":
    main()
