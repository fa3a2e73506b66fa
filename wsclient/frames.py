"""Frames of RFC 6455: opcodes, close codes, the ``Frame`` value, masking and serialisation.

Sans-I/O: nothing here touches sockets, threads or clocks. Parsing lives in
:mod:`wsclient.protocol` because it is interleaved with the connection state.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CloseCode",
    "Frame",
    "Opcode",
    "encode_close_payload",
    "encode_header",
    "is_valid_close_code",
    "mask_payload",
    "parse_close_payload",
    "serialize_frame",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10

    @property
    def is_control(self) -> bool:
        return self >= 8


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 section 7.4.1 (and the IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


_DATA_OPCODES = frozenset({0, 1, 2})
_CONTROL_OPCODES = frozenset({8, 9, 10})


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame.

    ``payload`` is always ``bytes`` (a text fragment may end inside a character).
    Constructing a frame with an unknown opcode raises ``ValueError``.
    """

    opcode: Opcode
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def __post_init__(self) -> None:
        try:
            opcode = Opcode(self.opcode)
        except ValueError:
            raise ValueError(f"unknown opcode {self.opcode!r}") from None
        if opcode is not self.opcode:
            object.__setattr__(self, "opcode", opcode)
        payload = self.payload
        if type(payload) is not bytes:
            if isinstance(payload, str):
                raise TypeError("Frame payload must be bytes-like; encode text first")
            object.__setattr__(self, "payload", bytes(payload))

    @property
    def is_control(self) -> bool:
        return self.opcode >= 8

    def __repr__(self) -> str:
        data = self.payload
        shown = repr(data[:24]) + ("..." if len(data) > 24 else "")
        flags = "".join(
            name for name, on in (("F", self.fin), ("1", self.rsv1), ("2", self.rsv2), ("3", self.rsv3)) if on
        )
        return f"Frame({self.opcode.name}, {shown}, len={len(data)}, flags={flags or '-'})"


# --- masking -------------------------------------------------------------------------------
#
# Pure Python, so the XOR has to run inside C: a payload becomes one big integer
# (``int.from_bytes``), is XORed with the key stream as an integer and converted back
# (``int.to_bytes``). The two conversions are the whole cost; benchmarks/mask_micro.py
# measures the alternatives (four strided ``bytes.translate`` lanes is about 25 % slower).
#
# * Up to _TABLE_MAX bytes (control frames, small messages): the key stream is
#   ``key * _REPUNITS[n]`` cut to n bytes by ``_LOW_MASKS[n]``, both precomputed per length
#   (about 70 KiB for the two tables together).
# * Larger payloads go through _MASK_CHUNK-byte pieces: the pieces stay in the L1 cache
#   (one 16 KiB conversion is slower per byte than four of 4 KiB) and share one key stream
#   integer, computed once per call with a single small multiplication. The tail shorter
#   than a piece uses a key stream built from the repeated key bytes.

_MASK_CHUNK = 4096
_TABLE_MAX = 256
#: ``0x...00000001_00000001`` covering _MASK_CHUNK bytes: ``k * _CHUNK_REPUNIT`` repeats k.
_CHUNK_REPUNIT = int.from_bytes(b"\x01\x00\x00\x00" * (_MASK_CHUNK // 4), "little")
#: ``_REPUNITS[n] * k`` repeats the 32-bit key over at least n bytes (whole words).
_REPUNITS = tuple(
    int.from_bytes(b"\x01\x00\x00\x00" * ((n + 3) >> 2), "little") for n in range(_TABLE_MAX + 1)
)
#: ``_LOW_MASKS[n]`` keeps the low n bytes.
_LOW_MASKS = tuple((1 << (n << 3)) - 1 for n in range(_TABLE_MAX + 1))
# Bound once: looking ``int.from_bytes`` up binds a new method object each time (~60 ns).
_from_bytes = int.from_bytes


def _as_flat_bytes(data: bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``data`` as a sequence of single bytes (a memoryview of wider items is copied)."""
    if data.__class__ is memoryview and (data.itemsize != 1 or data.ndim != 1):  # type: ignore[union-attr]
        return data.tobytes()  # type: ignore[union-attr]
    return data


def _py_mask_payload(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """The pure-Python ``mask_payload`` (the fallback when the C accelerator is absent)."""
    if data.__class__ is not bytes:
        data = _as_flat_bytes(data)  # type: ignore[arg-type]
    n = len(data)
    from_bytes = _from_bytes
    if n <= _TABLE_MAX:
        return (
            (from_bytes(data, "little") ^ from_bytes(key, "little") * _REPUNITS[n]) & _LOW_MASKS[n]
        ).to_bytes(n, "little")
    if n < _MASK_CHUNK:
        stream = key * ((n >> 2) + 1)
        return (from_bytes(data, "little") ^ from_bytes(stream[:n], "little")).to_bytes(n, "little")
    return _mask_chunks(data, key, n)


def _mask_chunks(data: bytes | bytearray | memoryview, key: bytes, n: int) -> bytes:
    """``mask_payload`` for ``n >= _MASK_CHUNK``: piecewise, one shared key stream integer.

    A separate function on purpose: the comprehension would turn the caller's locals into
    cell variables (before Python 3.12), which costs the small-payload path ~25 %.
    """
    from_bytes = _from_bytes
    size = _MASK_CHUNK
    whole = n - n % size
    stream_int = from_bytes(key, "little") * _CHUNK_REPUNIT
    parts = [
        (from_bytes(data[i : i + size], "little") ^ stream_int).to_bytes(size, "little")
        for i in range(0, whole, size)
    ]
    rest = n - whole
    if rest:
        # ``whole`` is a multiple of 4, so the tail starts on key byte 0.
        stream = key * ((rest >> 2) + 1)
        tail = from_bytes(data[whole:], "little") ^ from_bytes(stream[:rest], "little")
        parts.append(tail.to_bytes(rest, "little"))
    return b"".join(parts)


# --- choosing the implementation --------------------------------------------------------------
#
# The optional C extension ``wsclient._speedups`` (built at install when a compiler is there)
# masks 8 bytes at a time at memory speed; see docs/benchmarks.md. The environment variable
# WSCLIENT_SPEEDUPS forces the choice: ``0`` always uses pure Python, ``1`` requires the C
# extension (ImportError when it is missing), anything else uses it when it is there.

MaskFunction = Callable[[bytes | bytearray | memoryview, bytes], bytes]


def _load_c_mask() -> MaskFunction | None:
    setting = os.environ.get("WSCLIENT_SPEEDUPS", "").strip()
    if setting == "0":
        return None
    try:
        from wsclient._speedups import mask
    except ImportError as exc:
        if setting == "1":
            raise ImportError(
                "WSCLIENT_SPEEDUPS=1 requires the C extension wsclient._speedups, which is not "
                "built (reinstall wsclient with a C compiler and the Python headers available)"
            ) from exc
        return None
    return mask


#: The C ``mask`` when the accelerator is in use, else ``None``.
c_mask: MaskFunction | None = _load_c_mask()
#: The C receive short path (``Protocol._parse``) when the accelerator is in use and has it
#: (an extension built from an older checkout may not), else ``None``.
c_scan_messages: Callable[[bytes, int, int, int, list[Any]], int] | None = None
#: The C ``mask_frame(head, keys, at, payload)`` (the send side's short path for small
#: frames) when the accelerator is in use and has it, else ``None``.
c_mask_frame: Callable[[bytes, bytes, int, bytes], bytes] | None = None
if c_mask is not None:
    from wsclient import _speedups

    c_scan_messages = getattr(_speedups, "scan_messages", None)
    c_mask_frame = getattr(_speedups, "mask_frame", None)
#: Which implementation ``mask_payload`` is: ``"c"`` or ``"python"``.
MASK_IMPLEMENTATION = "python" if c_mask is None else "c"

#: ``mask_payload(data, key) -> bytes``: XOR ``data`` with the 4-byte masking ``key``
#: (RFC 6455 section 5.3). ``data`` is any bytes-like object; the result is always ``bytes``.
#: Masking is its own inverse, so this also unmasks. It is the C function itself when the
#: accelerator is in use (a Python wrapper around it would cost as much as masking a small
#: payload), else the pure-Python one; both give the same bytes for the same inputs (the C
#: one also refuses a key that is not 4 bytes with ``ValueError``).
mask_payload: MaskFunction = _py_mask_payload if c_mask is None else c_mask


_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def encode_header(first_byte: int, length: int, mask_key: bytes | None) -> bytes:
    """Encode a frame header: ``first_byte`` holds FIN, RSV1-3 and the opcode."""
    if mask_key is None:
        if length < 126:
            return bytes((first_byte, length))
        if length < 65536:
            return _pack_short(first_byte, 126, length)
        return _pack_long(first_byte, 127, length)
    if length < 126:
        return bytes((first_byte, 0x80 | length)) + mask_key
    if length < 65536:
        return _pack_short(first_byte, 0xFE, length) + mask_key
    return _pack_long(first_byte, 0xFF, length) + mask_key


def serialize_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bool = True,
) -> bytes:
    """Serialise one frame to bytes; a client masks with a fresh key from ``os.urandom``."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0) | opcode
    if mask:
        key = os.urandom(4)
        return encode_header(first, len(payload), key) + mask_payload(payload, key)
    return encode_header(first, len(payload), None) + bytes(payload)


# --- close frames ----------------------------------------------------------------------------


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 section 7.4)."""
    if 3000 <= code <= 4999:
        return True
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)


def encode_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame; ``None`` (or 1005) gives an empty payload."""
    if code is None or code == 1005:
        return b""
    data = struct.pack("!H", code) + reason.encode("utf-8")
    if len(data) > 125:
        raise ValueError("a close reason may be at most 123 bytes of UTF-8")
    return data


def parse_close_payload(data: bytes) -> tuple[int, str]:
    """Decode a received close payload into ``(code, reason)``; 1005 when it is empty.

    Raises ``ValueError`` with the close code to answer (1002 or 1007) as ``args[1]``.
    """
    if not data:
        return 1005, ""
    if len(data) == 1:
        raise ValueError("close frame with a one-byte payload", 1002)
    code = (data[0] << 8) | data[1]
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}", 1002)
    try:
        reason = data[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("close reason is not valid UTF-8", 1007) from None
    return code, reason
