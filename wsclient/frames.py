"""Frames of RFC 6455: opcodes, close codes, the ``Frame`` value, masking and serialisation.

Sans-I/O: nothing here touches sockets, threads or clocks. Parsing lives in
:mod:`wsclient.protocol` because it is interleaved with the connection state.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass

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

# One translation table per key byte: _XOR_TABLES[k][b] == b ^ k.
_XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]
# Below this size the big-integer XOR is cheaper than four strided translate passes.
_TRANSLATE_THRESHOLD = 2048


def mask_payload(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (RFC 6455 section 5.3).

    No per-byte Python loop: small payloads go through one big-integer XOR, large ones
    through ``bytes.translate`` on the four interleaved lanes, which runs at memory speed.
    """
    n = len(data)
    if n == 0:
        return b""
    if n < _TRANSLATE_THRESHOLD:
        full = key * ((n >> 2) + 1)
        return (
            int.from_bytes(data, "little") ^ int.from_bytes(full[:n], "little")
        ).to_bytes(n, "little")
    src = data if isinstance(data, bytes) else bytes(data)
    out = bytearray(n)
    tables = _XOR_TABLES
    out[0::4] = src[0::4].translate(tables[key[0]])
    out[1::4] = src[1::4].translate(tables[key[1]])
    out[2::4] = src[2::4].translate(tables[key[2]])
    out[3::4] = src[3::4].translate(tables[key[3]])
    return bytes(out)


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
