"""Micro-benchmark of WebSocket masking (RFC 6455 section 5.3) in pure Python.

Runs every method on the same payloads and prints, per size, the throughput in MiB/s and the
time per call. Methods are timed in interleaved rounds (A B C A B C ...) and the best round
counts, which keeps the comparison fair on a shared, noisy machine.

    python benchmarks/mask_micro.py                      # default sizes and methods
    python benchmarks/mask_micro.py --sizes 16 16384 --budget 2
    python benchmarks/mask_micro.py --methods wsclient translate4 --tables

``wsclient`` is the library's ``mask_payload`` (``wsclient_c`` the C accelerator when it is
built, ``wsclient_py`` the pure-Python fallback); the others are the alternatives it was chosen
from. ``--tables`` adds the per-lane lookup-table methods (they build about 4.5 MiB and
17 MiB of precomputed integers first).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from collections.abc import Callable
from itertools import cycle, repeat
from operator import xor

from wsclient.frames import _py_mask_payload, c_mask, mask_payload

MIB = 1 << 20
Masker = Callable[[bytes, bytes], bytes]
_fb = int.from_bytes


def reference(data: bytes, key: bytes) -> bytes:
    """The definition, one byte at a time (for scale only)."""
    return bytes(map(xor, data, cycle(key)))


_XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def translate4(data: bytes, key: bytes) -> bytes:
    """Four strided lanes, each through ``bytes.translate`` (the previous implementation)."""
    src = data if isinstance(data, bytes) else bytes(data)
    out = bytearray(len(src))
    out[0::4] = src[0::4].translate(_XOR_TABLES[key[0]])
    out[1::4] = src[1::4].translate(_XOR_TABLES[key[1]])
    out[2::4] = src[2::4].translate(_XOR_TABLES[key[2]])
    out[3::4] = src[3::4].translate(_XOR_TABLES[key[3]])
    return bytes(out)


def bigint_bytes_stream(data: bytes, key: bytes) -> bytes:
    """One integer XOR; the key stream is converted from the repeated key bytes."""
    n = len(data)
    stream = key * ((n >> 2) + 1)
    return (_fb(data, "little") ^ _fb(stream[:n], "little")).to_bytes(n, "little")


_repunit_cache: dict[int, int] = {}


def _repunit(words: int) -> int:
    value = _repunit_cache.get(words)
    if value is None:
        value = _repunit_cache[words] = _fb(b"\x01\x00\x00\x00" * words, "little")
    return value


def bigint_repunit(data: bytes, key: bytes) -> bytes:
    """One integer XOR; the key stream is ``key * 0x..00000001_00000001`` (one multiplication)."""
    n = len(data)
    q = (n + 3) >> 2
    return (_fb(data, "little") ^ _fb(key, "little") * _repunit(q)).to_bytes(q << 2, "little")[:n]


def bigint_doubling(data: bytes, key: bytes) -> bytes:
    """One integer XOR; the key stream grows by shift-and-or doubling (no table, no multiply)."""
    n = len(data)
    stream = _fb(key, "little")
    bits = 32
    while bits < n * 8:
        stream |= stream << bits
        bits <<= 1
    return ((_fb(data, "little") ^ stream) & ((1 << (n << 3)) - 1)).to_bytes(n, "little")


def make_chunked(size: int) -> Masker:
    """Integer XOR over ``size``-byte pieces sharing one key stream integer."""
    rep = _repunit(size // 4)

    def chunked(data: bytes, key: bytes) -> bytes:
        n = len(data)
        whole = n - n % size
        stream = _fb(key, "little") * rep
        parts = [
            (_fb(data[i : i + size], "little") ^ stream).to_bytes(size, "little")
            for i in range(0, whole, size)
        ]
        if whole < n:
            parts.append(bigint_bytes_stream(data[whole:], key))
        return b"".join(parts)

    chunked.__name__ = f"chunked{size}"
    return chunked


def make_lane_tables(size: int) -> tuple[Masker, int]:
    """Key stream as the OR of four precomputed lane integers ``T[lane][key byte]``.

    Returns the masker and the approximate memory of its tables in bytes.
    """
    tables = [
        [_fb((bytes(lane) + bytes((b,)) + bytes(3 - lane)) * (size // 4), "little") for b in range(256)]
        for lane in range(4)
    ]
    memory = sum(sys.getsizeof(v) for row in tables for v in row)
    t0, t1, t2, t3 = tables

    def lanes(data: bytes, key: bytes) -> bytes:
        n = len(data)
        whole = n - n % size
        stream = t0[key[0]] | t1[key[1]] | t2[key[2]] | t3[key[3]]
        parts = [
            (_fb(data[i : i + size], "little") ^ stream).to_bytes(size, "little")
            for i in range(0, whole, size)
        ]
        if whole < n:
            parts.append(bigint_bytes_stream(data[whole:], key))
        return b"".join(parts)

    lanes.__name__ = f"lanes{size}"
    return lanes, memory


def hex_route(data: bytes, key: bytes) -> bytes:
    """Through hexadecimal text: ``int(data.hex(), 16)`` and back with ``bytes.fromhex``."""
    n = len(data)
    if n == 0:
        return b""
    stream = key * ((n >> 2) + 1)
    value = int(data.hex(), 16) ^ int(stream[:n].hex(), 16)
    return bytes.fromhex(format(value, f"0{2 * n}x"))


def u64_map(data: bytes, key: bytes) -> bytes:
    """``struct`` to 64-bit words, ``map(xor)`` with the repeated key word, and back."""
    n = len(data)
    words = n >> 3
    k8 = _fb(key * 2, "little")
    fmt = f"<{words}Q"
    head = struct.pack(fmt, *map(xor, struct.unpack_from(fmt, data), repeat(k8, words)))
    return head + bigint_bytes_stream(data[words * 8 :], key)


BASE_METHODS: dict[str, Masker] = {
    "wsclient": mask_payload,
    "wsclient_py": _py_mask_payload,
    "translate4": translate4,
    "bigint_bytes": bigint_bytes_stream,
    "bigint_repunit": bigint_repunit,
    "bigint_doubling": bigint_doubling,
    "chunked1024": make_chunked(1024),
    "chunked2048": make_chunked(2048),
    "chunked4096": make_chunked(4096),
    "chunked8192": make_chunked(8192),
    "hex": hex_route,
    "u64_map": u64_map,
    "reference": reference,
}
if c_mask is not None:
    BASE_METHODS["wsclient_c"] = c_mask


def _calibrate(fn: Masker, data: bytes, key: bytes, slice_s: float) -> int:
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn(data, key)
        if time.perf_counter() - t0 >= slice_s:
            return loops
        loops *= 2


def measure(methods: dict[str, Masker], data: bytes, key: bytes, budget: float) -> dict[str, float]:
    """Best seconds per call of each method, over interleaved rounds within ``budget`` seconds."""
    slice_s = 0.002
    loops = {name: _calibrate(fn, data, key, slice_s) for name, fn in methods.items()}
    best = dict.fromkeys(methods, float("inf"))
    rounds = max(5, int(budget / (slice_s * len(methods))))
    for _ in range(rounds):
        for name, fn in methods.items():
            k = loops[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn(data, key)
            best[name] = min(best[name], (time.perf_counter() - t0) / k)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 125, 1024, 4096, 16384, 65536, 1 << 20])
    parser.add_argument("--methods", nargs="+", default=None, help="subset of methods (default: all)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per size")
    parser.add_argument("--tables", action="store_true", help="add the per-lane lookup-table methods")
    args = parser.parse_args(argv)

    methods = dict(BASE_METHODS)
    if args.tables:
        for size in (4096, 16384):
            fn, memory = make_lane_tables(size)
            methods[fn.__name__] = fn
            print(f"# {fn.__name__}: tables hold {memory / MIB:.1f} MiB")
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            parser.error(f"unknown methods: {sorted(unknown)}; known: {sorted(methods)}")
        methods = {name: methods[name] for name in args.methods}

    print(f"# Python {sys.version.split()[0]}; best of interleaved rounds; MiB/s (time per call)")
    for n in args.sizes:
        data = os.urandom(n)
        key = os.urandom(4)
        expected = reference(data, key)
        chosen = {}
        for name, fn in methods.items():
            if name in ("reference", "hex", "u64_map") and n > 65536:
                continue  # too slow to be interesting at this size
            if fn(data, key) != expected:
                raise AssertionError(f"{name} is wrong at {n} bytes")
            chosen[name] = fn
        best = measure(chosen, data, key, args.budget)
        print(f"\n{n} bytes")
        for name, seconds in sorted(best.items(), key=lambda item: item[1]):
            rate = n / seconds / MIB
            print(f"  {name:16s} {rate:9.1f} MiB/s  {seconds * 1e6:10.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
