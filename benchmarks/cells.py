"""The benchmark cells of issue 5 and the payloads they move.

One table, read by the runner (what to run, where to pin it), by the server (what to write or
expect) and by the drivers (what to do). Payloads are built here, identically for the server
and every client, so that all libraries move exactly the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BATCH",
    "CELLS",
    "COMPRESSION_CELLS",
    "COMPRESSION_LIBRARIES",
    "DEFAULT_CELLS",
    "DEFLATE",
    "LIBRARIES",
    "PURE_PYTHON_SEND_16M_TARGET",
    "REFERENCE",
    "WSCLIENT_PY",
    "Cell",
    "X",
    "binary_payload",
    "json_pool",
    "message_pool",
    "split_variant",
    "text_payload",
]

#: Client libraries, in the order they run within a round (A B C A B C ...).
LIBRARIES = ("websocket-client", "websockets", "wsclient")
#: Every ratio is taken against this library's result in the same round.
REFERENCE = "websocket-client"
#: Libraries measured in the compression cells (websocket-client has no permessage-deflate).
COMPRESSION_LIBRARIES = ("websockets", "wsclient")
#: Suffix of a library's name for its run with permessage-deflate negotiated.
DEFLATE = "+deflate"

MIB = 1 << 20
#: Messages per ``send_many`` call in the batched cells.
BATCH = 100
#: Pseudo-library: wsclient with its pure-Python masking (``WSCLIENT_SPEEDUPS=0``).
WSCLIENT_PY = "wsclient-py"
#: The multiplication sign of the report, spelled out so that the source stays ASCII-clean.
X = "\u00d7"
#: Target of the ``wsclient-py`` row in ``send-16m``: no lower than before the C path.
PURE_PYTHON_SEND_16M_TARGET = f"≥ 1.86{X} (pure-Python figure before the C path)"


@dataclass(frozen=True)
class Cell:
    """One benchmark cell.

    ``kind`` is what the client does: ``recv`` (read ``count`` messages the server writes),
    ``send`` (write ``count`` messages, then wait for the server's ``done``), ``echo``
    (``count`` sequential round trips), ``connect`` (``count`` sequential connect + close) or
    ``idle`` (hold ``count`` open connections and measure memory and threads), ``scale``
    (open ``connections`` at once, then each receives ``count`` messages, all concurrently)
    or ``storm`` (``threads`` threads open and close ``count`` connections between them).
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
    #: Where the messages come from: ``fixed`` (one payload of ``size`` bytes, repeated),
    #: ``json`` (a cycle of distinct ~``size``-byte JSON records, see :func:`json_pool`) or
    #: ``jsonl`` (a cycle of distinct ``size``-byte texts of JSON lines).
    payload: str = "fixed"
    #: A compression cell: every library runs once with permessage-deflate negotiated
    #: (``<lib>+deflate``) and once with ``compression=None``, against the same server.
    compression: bool = False
    #: Send in batches of :data:`BATCH` messages with the library's batching call
    #: (``send_many``); a library without one sends them one by one.
    batched: bool = False
    #: Scale cells: how many connections at once (``count`` is then per connection for
    #: ``scale``), the quick-run figure, and the opening threads of ``storm``.
    connections: int = 0
    quick_connections: int = 0
    threads: int = 0

    def n(self, quick: bool) -> int:
        """The message (or connection) count to use."""
        return self.quick_count if quick else self.count

    def conns(self, quick: bool) -> int:
        """The number of simultaneous connections of a ``scale`` cell."""
        return self.quick_connections if quick else self.connections


CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        Cell("recv-16", f"receive 100k {X} 16-byte text", "recv", "text", 16,
             100_000, 10_000, "split", f"≥ 10{X}"),
        Cell("recv-1k", f"receive 100k {X} 1 KiB text (UTF-8 validated)", "recv", "text", 1024,
             100_000, 5_000, "split", f"≥ 100{X}"),
        Cell("recv-16m", f"receive 64 {X} 16 MiB binary", "recv", "binary", 16 * MIB,
             64, 8, "split", f"≥ 1.3{X} (≥ 90 % of raw)", big=True, extras=("raw",)),
        Cell("send-16", f"send 100k {X} 16-byte text", "send", "text", 16,
             100_000, 10_000, "split", f"≥ 2.0{X}"),
        # Issue 12: the plain send cell keeps its floor; the batched one hands 100 messages
        # at a time to wsclient's send_many (the other libraries send one by one).
        Cell("send-16-batched", f"send 100k {X} 16-byte text, batched", "send", "text", 16,
             100_000, 10_000, "split", f"≥ 10{X}", batched=True),
        Cell("send-16m", f"send 64 {X} 16 MiB binary (masked)", "send", "binary", 16 * MIB,
             64, 8, "split", f"≥ 6{X} (C masking)", big=True, extras=("wsclient-py",)),
        Cell("echo-16", f"echo 20k {X} 16-byte round trips", "echo", "text", 16,
             20_000, 2_000, "same", f"≥ 1.5{X}"),
        Cell("connect", "connect + handshake + close, 1000 sequential", "connect", "text", 0,
             1000, 100, "same", f"≥ 1.0{X}"),
        Cell("idle-200", "200 idle open connections", "idle", "text", 0,
             200, 200, "same", "≤ 24 KiB, 1 thread / conn"),
        # Issue 12: many connections at once. Binary payloads: with text, websocket-client's
        # pure-Python UTF-8 validation (see recv-1k) would be the whole measurement.
        Cell("scale-1000", f"1000 connections at once, each receiving 200 {X} 1 KiB binary",
             "scale", "binary", 1024, 200, 50, "split",
             "faster than both; ≤ 24 KiB, 1 thread / conn", connections=1000, quick_connections=100),
        Cell("storm-1000", "1000 connections opened + closed by 16 threads at once", "storm",
             "text", 0, 1000, 160, "split", "faster than both", threads=16),
        # Issue 4: the cost of permessage-deflate (opt-in: ``run.py --compression``).
        Cell("recv-json-z", f"receive 100k {X} ~200-byte JSON text", "recv", "text", 200,
             100_000, 10_000, "split", "", payload="json", compression=True),
        Cell("send-json-z", f"send 100k {X} ~200-byte JSON text", "send", "text", 200,
             100_000, 10_000, "split", "", payload="json", compression=True),
        Cell("recv-1m-z", f"receive 64 {X} 1 MiB JSON-lines text", "recv", "text", MIB,
             64, 8, "split", "", payload="jsonl", compression=True),
        Cell("send-1m-z", f"send 64 {X} 1 MiB JSON-lines text", "send", "text", MIB,
             64, 8, "split", "", payload="jsonl", compression=True),
    )
}

#: The compression cells, run only when named or with ``run.py --compression``.
COMPRESSION_CELLS = tuple(name for name, cell in CELLS.items() if cell.compression)
#: What ``run.py`` runs without ``--cells``.
DEFAULT_CELLS = tuple(name for name, cell in CELLS.items() if not cell.compression)

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


def split_variant(lib: str) -> tuple[str, bool]:
    """``"wsclient+deflate"`` -> ``("wsclient", True)``; ``"wsclient"`` -> ``("wsclient", False)``."""
    if lib.endswith(DEFLATE):
        return lib[: -len(DEFLATE)], True
    return lib, False


#: Distinct messages in a ``json`` cycle: 4096 x ~200 bytes (~800 KiB) is far more history than
#: deflate's 32 KiB window, so cycling looks to the compressor like an endless stream.
JSON_POOL = 4096
#: Distinct messages in a ``jsonl`` cycle (1 MiB each, also far past the window).
JSONL_POOL = 8

_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD", "GBP-JPY", "AAPL", "MSFT", "NVDA")
_KINDS = ("trade", "quote", "order", "cancel", "fill")
_VENUES = ("alpha", "bravo", "charlie", "delta")


def _record(i: int) -> str:
    """The ``i``-th JSON record (~200 bytes, ASCII): fixed keys, pseudo-random values."""
    h = (i * 2654435761 + 97) & 0xFFFFFFFF  # Knuth's multiplicative hash: same in every process
    g = (h * 40503 + i) & 0xFFFFFF
    return (
        f'{{"id":{1_000_000 + i},"type":"{_KINDS[h % 5]}","symbol":"{_SYMBOLS[(h >> 3) % 8]}",'
        f'"price":{(h % 5_000_000) / 100:.2f},"qty":{(g % 100_000) / 10_000:.4f},'
        f'"side":"{"buy" if h & 1 else "sell"}","venue":"{_VENUES[(h >> 7) % 4]}",'
        f'"ts":"2026-11-25T21:{(i // 60_000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z",'
        f'"user":"u-{g % 100_000:05d}","flags":["{"maker" if g & 2 else "taker"}",'
        f'"{"ioc" if g & 4 else "gtc"}"]}}'
    )


def json_pool(size: int) -> list[str]:
    """The ``json`` cycle: :data:`JSON_POOL` distinct records, each padded to ~``size`` bytes."""
    out = []
    for i in range(JSON_POOL):
        record = _record(i)
        pad = size - len(record) - len(',"note":""}') + 1
        if pad > 0:
            record = record[:-1] + ',"note":"' + "n" * (pad - 1 + (i % 16)) + '"}'
        out.append(record)
    return out


def _jsonl(index: int, size: int) -> str:
    """One ``size``-byte text of newline-separated JSON records (records differ per index)."""
    lines: list[str] = []
    used = 0
    i = index * 1_000_003
    while used < size:
        line = _record(i) + "\n"
        lines.append(line)
        used += len(line)
        i += 1
    return "".join(lines)[:size]


def message_pool(cell: Cell) -> list[Any]:
    """The distinct messages of a cell, sent in order and cycled: message ``k`` is
    ``pool[k % len(pool)]``. ``str`` for text cells, ``bytes`` for binary ones."""
    if cell.payload == "json":
        return list(json_pool(cell.size))
    if cell.payload == "jsonl":
        return [_jsonl(k, cell.size) for k in range(JSONL_POOL)]
    if cell.opcode == "text":
        return [text_payload(cell.size)]
    return [binary_payload(cell.size)]
