"""Exhaustive checks of ``mask_payload`` against a plain per-byte reference (RFC 6455 5.3)."""

from __future__ import annotations

import array
import random

import pytest

from wsclient import frames
from wsclient.frames import mask_payload

_CHUNK = frames._MASK_CHUNK
_TABLE_MAX = frames._TABLE_MAX


def reference_mask(data: bytes, key: bytes) -> bytes:
    """The definition: octet i is XORed with key octet i mod 4."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def _sizes_around(points: list[int], spread: int = 5) -> list[int]:
    return sorted({n for p in points for n in range(max(0, p - spread), p + spread + 1)})


# Every size up to 300 (all the per-length tables and the first middle sizes), and a window
# around every threshold of the implementation and of the frame header.
THRESHOLD_SIZES = _sizes_around(
    [
        _TABLE_MAX,
        _CHUNK,
        2 * _CHUNK,
        3 * _CHUNK,
        4 * _CHUNK,
        16384,
        65535,
        65536,
        10 * _CHUNK,
    ]
)
ALL_SIZES = sorted(set(range(301)) | set(THRESHOLD_SIZES))


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def test_every_small_and_threshold_size_matches_the_reference() -> None:
    rng = _rng(6455)
    for n in ALL_SIZES:
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        expected = reference_mask(data, key)
        masked = mask_payload(data, key)
        assert type(masked) is bytes, n
        assert masked == expected, n
        assert mask_payload(masked, key) == data, n


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "memoryview-slice", "memoryview-readonly"])
def test_every_input_type_gives_the_same_bytes(kind: str) -> None:
    rng = _rng(sum(kind.encode()))
    for n in ALL_SIZES[::3] + THRESHOLD_SIZES:
        raw = rng.randbytes(n + 7)
        key = rng.randbytes(4)
        payload = raw[3 : 3 + n]
        if kind == "bytearray":
            data: bytes | bytearray | memoryview = bytearray(payload)
        elif kind == "memoryview":
            data = memoryview(bytearray(payload))
        elif kind == "memoryview-slice":
            data = memoryview(raw)[3 : 3 + n]
        else:
            data = memoryview(bytearray(payload)).toreadonly()
        masked = mask_payload(data, key)
        assert type(masked) is bytes
        assert masked == reference_mask(payload, key), (kind, n)


def test_input_is_left_untouched() -> None:
    for n in (0, 5, _TABLE_MAX + 1, _CHUNK + 3, 3 * _CHUNK):
        buf = bytearray(range(256)) * (n // 256 + 1)
        del buf[n:]
        before = bytes(buf)
        mask_payload(buf, b"\xff\x01\x80\x7f")
        mask_payload(memoryview(buf), b"\xff\x01\x80\x7f")
        assert buf == before


@pytest.mark.parametrize("n", [0, 1, 7, 16, _TABLE_MAX + 2, _CHUNK + 1])
def test_memoryview_of_wider_items_masks_its_bytes(n: int) -> None:
    words = array.array("I", range(1, n + 1))
    raw = words.tobytes()
    key = b"\x12\x34\x56\x78"
    assert mask_payload(memoryview(words), key) == reference_mask(raw, key)
    if raw:
        grid = memoryview(bytearray(raw)).cast("B", shape=[len(raw) // 4, 4])
        assert mask_payload(grid, key) == reference_mask(raw, key)


def test_non_contiguous_memoryview() -> None:
    raw = bytes(range(256)) * 40
    view = memoryview(raw)[::3]
    key = b"\xa5\x5a\x00\xff"
    assert mask_payload(view, key) == reference_mask(raw[::3], key)


@pytest.mark.parametrize(
    "key",
    [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x01", b"\x80\x00\x00\x00", b"\x01\x02\x03\x04"],
)
def test_edge_keys(key: bytes) -> None:
    for n in (1, 3, 4, 125, _TABLE_MAX, _TABLE_MAX + 1, _CHUNK, _CHUNK + 2, 3 * _CHUNK + 1):
        data = bytes((i * 37 + 11) & 0xFF for i in range(n))
        assert mask_payload(data, key) == reference_mask(data, key), (key, n)


def test_all_zero_and_all_ones_payloads_reveal_the_key_stream() -> None:
    # Leading/trailing zero bytes must survive the integer round trip in both directions.
    key = b"\x00\x11\x00\x22"
    for n in (1, 2, 3, 4, 5, 129, _TABLE_MAX + 3, _CHUNK - 1, _CHUNK, _CHUNK + 5, 2 * _CHUNK + 6):
        assert mask_payload(bytes(n), key) == (key * (n // 4 + 1))[:n], n
        ones = b"\xff" * n
        assert mask_payload(ones, key) == reference_mask(ones, key), n


def test_random_sizes_and_keys() -> None:
    rng = _rng(20240607)
    for _ in range(60):
        n = rng.randrange(0, 5 * _CHUNK)
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        assert mask_payload(data, key) == reference_mask(data, key), n


def test_large_payload() -> None:
    rng = _rng(7)
    n = 300_001
    data = rng.randbytes(n)
    key = rng.randbytes(4)
    masked = mask_payload(data, key)
    # The reference is slow at this size: compare a sample of positions, and the round trip.
    for i in list(range(0, 64)) + [rng.randrange(n) for _ in range(2000)] + list(range(n - 64, n)):
        assert masked[i] == data[i] ^ key[i % 4], i
    assert mask_payload(masked, key) == data
