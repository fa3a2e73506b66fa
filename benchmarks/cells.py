"""The benchmark cells of issue 5 and the payloads they move.

One table, read by the runner (what to run, where to pin it), by the server (what to write or
expect) and by the drivers (what to do). Payloads are built here, identically for the server
and every client, so that all libraries move exactly the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CELLS",
    "LIBRARIES",
    "REFERENCE",
    "Cell",
    "X",
    "binary_payload",
    "text_payload",
]

#: Client libraries, in the order they run within a round (A B C A B C ...).
LIBRARIES = ("websocket-client", "websockets", "wsclient")
#: Every ratio is taken against this library's result in the same round.
REFERENCE = "websocket-client"

MIB = 1 << 20
#: The multiplication sign of the report, spelled out so that the source stays ASCII-clean.
X = "\u00d7"


@dataclass(frozen=True)
class Cell:
    """One benchmark cell.

    ``kind`` is what the client does: ``recv`` (read ``count`` messages the server writes),
    ``send`` (write ``count`` messages, then wait for the server's ``done``), ``echo``
    (``count`` sequential round trips), ``connect`` (``count`` sequential connect + close) or
    ``idle`` (hold ``count`` open connections and measure memory and threads).
    ``placement`` is ``split`` (client and server on different cores: throughput) or
    ``same`` (one core: latency, where a cross-core wake-up would dominate).
    """

    name: str
    title: str
    kind: str
    opcode: str  # "text" or "binary"
    size: int
    count: int
    quick_count: int
    placement: str
    target: str
    #: Raise the libraries' size limits (the 16 MiB cells).
    big: bool = False
    #: Extra pseudo-libraries measured in this cell (``raw``: a plain socket baseline).
    extras: tuple[str, ...] = ()

    def n(self, quick: bool) -> int:
        """The message (or connection) count to use."""
        return self.quick_count if quick else self.count


CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        Cell("recv-16", f"receive 100k {X} 16-byte text", "recv", "text", 16,
             100_000, 10_000, "split", f"≥ 3.5{X}"),
        Cell("recv-1k", f"receive 100k {X} 1 KiB text (UTF-8 validated)", "recv", "text", 1024,
             100_000, 5_000, "split", f"≥ 45{X}"),
        Cell("recv-16m", f"receive 64 {X} 16 MiB binary", "recv", "binary", 16 * MIB,
             64, 8, "split", f"≥ 1.05{X} (≥ 90 % of raw)", big=True, extras=("raw",)),
        Cell("send-16", f"send 100k {X} 16-byte text", "send", "text", 16,
             100_000, 10_000, "split", f"≥ 2.0{X}"),
        Cell("send-16m", f"send 64 {X} 16 MiB binary (masked)", "send", "binary", 16 * MIB,
             64, 8, "split", f"≥ 3.5{X}", big=True),
        Cell("echo-16", f"echo 20k {X} 16-byte round trips", "echo", "text", 16,
             20_000, 2_000, "same", f"≥ 1.0{X}"),
        Cell("connect", "connect + handshake + close, 1000 sequential", "connect", "text", 0,
             1000, 100, "same", f"≥ 1.0{X}"),
        Cell("idle-200", "200 idle open connections", "idle", "text", 0,
             200, 200, "same", "≤ 24 KiB, 1 thread / conn"),
    )
}

# Mixed 1-, 2-, 3- and 4-byte UTF-8 sequences, so that validation cannot take an ASCII
# fast path.
_TEXT_PATTERN = "héllo wörld — ünïcode ✓ 𝄞 Grüße, ça va? 日本語 "


def text_payload(size: int) -> str:
    """A ``str`` whose UTF-8 encoding is exactly ``size`` bytes, mostly non-ASCII."""
    out: list[str] = []
    used = 0
    while True:
        for char in _TEXT_PATTERN:
            width = len(char.encode("utf-8"))
            if used + width > size:
                out.append("x" * (size - used))
                return "".join(out)
            out.append(char)
            used += width


def binary_payload(size: int) -> bytes:
    """``size`` bytes of a fixed, non-trivial pattern (the same in every process)."""
    block = bytes((i * 31 + 7) & 0xFF for i in range(4096))
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]
