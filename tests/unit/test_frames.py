from __future__ import annotations

import os

import pytest

from wsclient.frames import (
    CloseCode,
    Frame,
    Opcode,
    encode_close_payload,
    is_valid_close_code,
    mask_payload,
    parse_close_payload,
    serialize_frame,
)


def slow_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 2047, 2048, 2049, 65536, 100003])
def test_mask_matches_the_definition(size: int) -> None:
    data = os.urandom(size)
    key = os.urandom(4)
    masked = mask_payload(data, key)
    assert masked == slow_mask(data, key)
    assert mask_payload(masked, key) == data


def test_mask_accepts_bytearray_and_memoryview() -> None:
    data = os.urandom(5000)
    key = b"\x01\x02\x03\x04"
    assert mask_payload(bytearray(data), key) == slow_mask(data, key)
    assert mask_payload(memoryview(data)[10:4010], key) == slow_mask(data[10:4010], key)


def test_serialize_uses_a_fresh_key_per_frame() -> None:
    a = serialize_frame(Opcode.TEXT, b"hello")
    b = serialize_frame(Opcode.TEXT, b"hello")
    assert a[0] == 0x81 and a[1] == 0x80 | 5
    assert a[2:6] != b[2:6]  # 2**-32 chance of a false failure
    assert slow_mask(a[6:], a[2:6]) == b"hello"


@pytest.mark.parametrize(("size", "header_len"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_length_encodings(size: int, header_len: int) -> None:
    data = serialize_frame(Opcode.BINARY, b"x" * size, mask=False)
    assert len(data) == header_len + size


def test_frame_value() -> None:
    f = Frame(Opcode.TEXT, bytearray(b"ab"), fin=False)
    assert f.payload == b"ab" and type(f.payload) is bytes
    assert not f.is_control
    assert Frame(9, b"").opcode is Opcode.PING
    with pytest.raises(ValueError):
        Frame(3, b"")
    with pytest.raises(TypeError):
        Frame(Opcode.TEXT, "text")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        f.fin = True  # type: ignore[misc]


def test_close_payload_round_trip() -> None:
    assert parse_close_payload(encode_close_payload(1000, "bye")) == (1000, "bye")
    assert parse_close_payload(b"") == (1005, "")
    assert encode_close_payload(None) == b""
    with pytest.raises(ValueError):
        encode_close_payload(1000, "x" * 124)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_invalid_close_codes(code: int) -> None:
    assert not is_valid_close_code(code)
    with pytest.raises(ValueError) as info:
        parse_close_payload(code.to_bytes(2, "big"))
    assert info.value.args[1] == 1002


def test_close_reason_must_be_utf8() -> None:
    with pytest.raises(ValueError) as info:
        parse_close_payload(b"\x03\xe8\xff")
    assert info.value.args[1] == 1007
    assert CloseCode.TLS_HANDSHAKE == 1015
