"""The Sans-I/O protocol: bytes in, events out, without sockets."""

from __future__ import annotations

import os
import random

import pytest

from wsclient.frames import Frame, Opcode, mask_payload, serialize_frame
from wsclient.protocol import Close, Failure, Ping, Pong, Protocol, State


def _c_paths() -> tuple[object, object] | None:
    try:
        from wsclient._speedups import mask_frame, scan_messages
    except ImportError:
        return None
    return scan_messages, mask_frame


@pytest.fixture(autouse=True, params=["python", "c"])
def receive_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the pure-Python receive loop and small-frame encoder, and
    with the C short paths (``wsclient._speedups.scan_messages`` and ``mask_frame``; skipped
    when not built, except under CI)."""
    import wsclient.protocol as protocol_module

    if request.param == "python":
        monkeypatch.setattr(protocol_module, "_C_SCAN", None)
        monkeypatch.setattr(protocol_module, "_C_FRAME", None)
    else:
        found = _c_paths()
        if found is None:
            message = "the C accelerator wsclient._speedups is not built"
            if os.environ.get("CI"):
                pytest.fail(message + " (CI must build it: .ci/install-speedups.sh)")
            pytest.skip(message)
        monkeypatch.setattr(protocol_module, "_C_SCAN", found[0])
        monkeypatch.setattr(protocol_module, "_C_FRAME", found[1])
    return str(request.param)


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked)."""
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=False)


def unmask_client(data: bytes) -> tuple[int, bytes]:
    """Decode one masked client frame: (first byte, payload)."""
    assert data[1] & 0x80, "client frames must be masked"
    n = data[1] & 0x7F
    pos = 2
    if n == 126:
        n = int.from_bytes(data[2:4], "big")
        pos = 4
    elif n == 127:
        n = int.from_bytes(data[2:10], "big")
        pos = 10
    key = data[pos : pos + 4]
    return data[0], mask_payload(data[pos + 4 : pos + 4 + n], key)


def feed_bytewise(p: Protocol, data: bytes) -> list:
    events: list = []
    for i in range(len(data)):
        events += p.receive_data(data[i : i + 1])
    return events


def failure_code(events: list) -> int:
    fails = [e for e in events if isinstance(e, Failure)]
    assert fails, f"expected a failure, got {events}"
    return fails[0].error.code


def test_many_messages_in_one_buffer() -> None:
    p = Protocol()
    data = b"".join(frame(1, f"m{i}".encode()) for i in range(100)) + frame(2, b"\x00\xff")
    events = p.receive_data(data)
    assert events == [f"m{i}" for i in range(100)] + [b"\x00\xff"]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200000])
def test_every_split_point_gives_the_same_message(size: int) -> None:
    payload = os.urandom(size)
    data = frame(2, payload)
    for cut in sorted({0, 1, 2, 3, 5, 9, 11, len(data) // 2, len(data) - 1}):
        p = Protocol()
        events = p.receive_data(data[:cut]) + p.receive_data(data[cut:])
        assert events == [payload]


def test_byte_by_byte() -> None:
    p = Protocol()
    text = "héllo wörld ✓ " * 20
    data = frame(1, text.encode()) + frame(9, b"ping!") + frame(1, b"x")
    assert feed_bytewise(p, data) == [text, Ping(b"ping!"), "x"]


def test_fragmented_text_with_interleaved_control() -> None:
    p = Protocol()
    raw = "κόσμε".encode()
    data = frame(1, raw[:3], fin=False) + frame(9, b"") + frame(0, raw[3:7], fin=False) + frame(0, raw[7:])
    assert p.receive_data(data) == [Ping(b""), "κόσμε"]


def test_large_fragmented_message_in_chunks() -> None:
    p = Protocol(max_message_size=10 << 20)
    payload = os.urandom(3 << 20)
    data = b"".join(
        frame(2 if i == 0 else 0, payload[i : i + (1 << 20)], fin=i + (1 << 20) >= len(payload))
        for i in range(0, len(payload), 1 << 20)
    )
    events = []
    for i in range(0, len(data), 70000):
        events += p.receive_data(data[i : i + 70000])
    assert events == [payload]


def test_pong_and_close_events() -> None:
    p = Protocol()
    events = p.receive_data(frame(10, b"pp") + frame(8, b"\x03\xe8bye"))
    assert events == [Pong(b"pp"), Close(1000, "bye")]
    assert p.state is State.CLOSED
    # The close is echoed with the same code, masked.
    (echo,) = p.data_to_send()
    assert unmask_client(echo) == (0x88, b"\x03\xe8")


def test_empty_close_is_answered_empty() -> None:
    p = Protocol()
    assert p.receive_data(frame(8, b"")) == [Close(1005, "")]
    (echo,) = p.data_to_send()
    assert unmask_client(echo) == (0x88, b"")


def test_nothing_after_close_is_processed() -> None:
    p = Protocol()
    events = p.receive_data(frame(8, b"\x03\xe8") + frame(1, b"late"))
    assert events == [Close(1000, "")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x83\x00", 1002),  # reserved opcode 3
        (b"\x8b\x00", 1002),  # reserved opcode 11
        (b"\xc1\x00", 1002),  # RSV1 without an extension
        (b"\xa1\x00", 1002),  # RSV2
        (b"\x09\x00", 1002),  # fragmented ping
        (b"\x89\x7e\x00\x7e" + b"x" * 126, 1002),  # ping of 126 bytes
        (b"\x80\x00", 1002),  # continuation without a message
        (b"\x81\x85abcd" + b"xxxxx", 1002),  # masked frame from the server
        (b"\x81\x02\xc3\x28", 1007),  # invalid UTF-8
        (b"\x88\x01\x03", 1002),  # one-byte close payload
        (b"\x88\x02\x03\xed", 1002),  # close code 1005 on the wire
        (b"\x88\x04\x03\xe8\xff\xfe", 1007),  # close reason not UTF-8
        (b"\x82\x7e\x00\x05hello", 1002),  # length not minimally encoded
    ],
)
def test_protocol_errors(data: bytes, code: int) -> None:
    p = Protocol()
    events = p.receive_data(data)
    assert failure_code(events) == code
    (close,) = p.data_to_send()
    first, payload = unmask_client(close)
    assert first == 0x88 and int.from_bytes(payload[:2], "big") == code
    assert p.receive_data(frame(1, b"ignored")) == []


def test_new_message_inside_a_fragmented_one_is_an_error() -> None:
    p = Protocol()
    assert failure_code(p.receive_data(frame(1, b"a", fin=False) + frame(1, b"b"))) == 1002


def test_frame_limit_is_checked_at_header_time() -> None:
    p = Protocol(max_frame_size=1000)
    header = b"\x82\x7e" + (1001).to_bytes(2, "big")
    assert failure_code(p.receive_data(header)) == 1009  # before any payload byte


def test_message_limit_is_checked_at_header_time() -> None:
    p = Protocol(max_frame_size=1000, max_message_size=1500)
    p.receive_data(frame(2, b"x" * 1000, fin=False))
    assert failure_code(p.receive_data(b"\x80\x7e" + (600).to_bytes(2, "big"))) == 1009


def test_invalid_utf8_fails_fast_inside_an_incomplete_frame() -> None:
    p = Protocol()
    payload = b"valid" + b"\xed\xa0\x80" + b"x" * 1000  # a surrogate: invalid
    data = frame(1, payload)
    events = p.receive_data(data[:12])  # header + 'valid' + the bad bytes, far from the end
    assert failure_code(events) == 1007


def test_invalid_utf8_fails_fast_in_the_first_fragment() -> None:
    p = Protocol()
    assert failure_code(p.receive_data(frame(1, b"ok\xff", fin=False))) == 1007


def test_utf8_split_across_fragments_and_reads_is_fine() -> None:
    p = Protocol()
    raw = "€uro 𝄞 clef".encode()
    data = frame(1, raw[:2], fin=False) + frame(0, raw[2:5], fin=False) + frame(0, raw[5:])
    assert feed_bytewise(p, data) == ["€uro 𝄞 clef"]


def test_frames_mode() -> None:
    p = Protocol(assemble_fragments=False)
    events = p.receive_data(frame(1, b"ab", fin=False) + frame(0, b"c") + frame(2, b"z"))
    assert events == [
        Frame(Opcode.TEXT, b"ab", fin=False),
        Frame(Opcode.CONTINUATION, b"c"),
        Frame(Opcode.BINARY, b"z"),
        b"z",
    ]


def test_eof() -> None:
    p = Protocol()
    p.receive_data(frame(2, b"abc")[:3])
    assert p.receive_eof() == []
    assert p.state is State.CLOSED and p.close_received is None


def test_encode_message_fragments_and_masks() -> None:
    p = Protocol(fragmentation_threshold=10)
    pieces = p.encode_message("0123456789abcdefghij!")
    assert isinstance(pieces, list) and len(pieces) == 6  # header, payload, ... per frame
    frames = [pieces[i] + pieces[i + 1] for i in range(0, len(pieces), 2)]
    decoded = [unmask_client(f) for f in frames]
    assert [d[0] for d in decoded] == [0x01, 0x00, 0x80]
    assert b"".join(d[1] for d in decoded) == b"0123456789abcdefghij!"
    single = Protocol().encode_message(b"\x00\x01")
    assert isinstance(single, bytes)
    assert unmask_client(single) == (0x82, b"\x00\x01")
    for size in (0, 1, 5, 125, 126, 1000):
        for data in ("é" * (size // 2), bytes(range(256)) * 4):
            data = data[:size]
            encoded = Protocol().encode_message(data)
            assert isinstance(encoded, bytes)
            first, payload = unmask_client(encoded)
            raw = data.encode() if isinstance(data, str) else data
            assert first == (0x81 if isinstance(data, str) else 0x82) and payload == raw


def test_encode_frame_checks_control_frames() -> None:
    p = Protocol()
    with pytest.raises(ValueError):
        p.encode_frame(Frame(Opcode.PING, b"x" * 126))
    with pytest.raises(ValueError):
        p.encode_frame(Frame(Opcode.PONG, b"", fin=False))
    data = p.encode_frame(Frame(Opcode.TEXT, b"a", fin=False, rsv2=True))
    assert unmask_client(data) == (0x21, b"a")


def test_encode_ping_limit() -> None:
    with pytest.raises(ValueError):
        Protocol().encode_ping(b"x" * 126)


def test_encode_close_changes_state() -> None:
    p = Protocol()
    data = p.encode_close(1001, "away")
    assert unmask_client(data) == (0x88, b"\x03\xe9away")
    assert p.state is State.CLOSING and p.close_sent == (1001, "away")
    assert p.receive_data(frame(8, b"\x03\xe9")) == [Close(1001, "")]
    assert p.data_to_send() == []  # no second close frame


# ---------------------------------------------------------------------- closing API


def test_initial_data_is_parsed_first() -> None:
    p = Protocol(initial_data=frame(1, b"glued") + frame(1, b"par"))
    assert p.receive_data(b"") == ["glued", "par"]
    p2 = Protocol(initial_data=frame(1, b"split")[:3])
    assert p2.receive_data(frame(1, b"split")[3:]) == ["split"]


def test_send_close_queues_our_close_once() -> None:
    p = Protocol()
    p.send_close(1000, "bye")
    assert p.state is State.CLOSING
    assert p.has_output
    out = p.data_to_send()
    assert len(out) == 1 and unmask_client(out[0]) == (0x88, b"\x03\xe8bye")
    assert p.close_sent == (1000, "bye")
    p.send_close(1001, "again")  # already sent: nothing more
    assert not p.has_output and p.data_to_send() == []


def test_send_close_after_an_echo_was_queued_sends_the_echo_only() -> None:
    p = Protocol()
    events = p.receive_data(frame(8, b"\x03\xe9"))
    assert events == [Close(1001, "")]
    p.send_close(1000, "")
    out = p.data_to_send()
    assert len(out) == 1 and unmask_client(out[0])[1] == b"\x03\xe9"


def test_fail_queues_a_close_with_its_code_and_ignores_input() -> None:
    p = Protocol()
    p.fail(1011, "keepalive")
    assert p.close_status((1006, "")) == (1011, "keepalive")
    assert unmask_client(p.data_to_send()[0])[1] == b"\x03\xf3keepalive"
    assert p.receive_data(frame(1, b"late")) == []


@pytest.mark.parametrize("code", [1005, 1006])
def test_fail_with_a_code_that_never_goes_on_the_wire(code: int) -> None:
    p = Protocol()
    p.fail(code)
    assert not p.has_output
    assert p.close_status((1000, "")) == (code, "")


def test_close_status_prefers_a_failure_then_the_peer_close() -> None:
    p = Protocol()
    assert p.close_status((1006, "")) == (1006, "")
    p.receive_data(frame(8, b"\x03\xe8ok"))
    assert p.close_status((1006, "")) == (1000, "ok")
    p2 = Protocol()
    p2.receive_data(frame(3, b""))
    assert p2.close_status((1006, ""))[0] == 1002


def test_data_after_our_close_is_dropped_but_the_peer_close_still_counts() -> None:
    p = Protocol()
    p.send_close(1000, "")
    p.data_to_send()
    events = p.receive_data(frame(1, b"late") + frame(2, b"later") + frame(10, b"pong") + frame(8, b"\x03\xe8"))
    assert events == [Pong(b"pong"), Close(1000, "")]


@pytest.mark.parametrize("size", [70_000, 1 << 20])
def test_large_data_after_our_close_is_dropped_too(size: int) -> None:
    """The rest of a large frame (read in pieces) is dropped as well: before, that path
    returned its message unfiltered, and a flood of large messages was queued."""
    p = Protocol()
    p.send_close(1000, "")
    p.data_to_send()
    events = []
    for data in (frame(2, b"x" * size), frame(1, b"y" * size)):
        # The frame's start, then its rest in one read that ends where the frame ends.
        events += p.receive_data(data[:1000])
        events += p.receive_data(data[1000:])
    events += p.receive_data(frame(8, b"\x03\xe8"))
    assert events == [Close(1000, "")]


def test_a_user_close_frame_closes_our_side() -> None:
    p = Protocol()
    p.encode_frame(Frame(Opcode.CLOSE, b"\x03\xe8"))
    assert p.close_sent == (1000, "")
    assert p.state is State.CLOSING


@pytest.mark.parametrize("payload", ["", "a", "héllo wörld" * 5, b"\x00\xff" * 62, b"x" * 125])
@pytest.mark.parametrize("k", [0, 0x01020304, 0xDEADBEEF])
def test_small_frame_forms_agree(payload: str | bytes, k: int) -> None:
    """The short path's two forms (bytes + C mask, or one integer) give the same frame."""
    from wsclient import protocol as P
    from wsclient.frames import _py_mask_payload

    data = payload.encode() if isinstance(payload, str) else payload
    opcode, n, key = (1 if isinstance(payload, str) else 2), len(data), k.to_bytes(4, "little")
    as_bytes = P._SMALL_HEAD_BYTES[opcode][n] + key + _py_mask_payload(data, key)
    masked = (int.from_bytes(data, "little") ^ k * P._REPUNITS[n]) & P._LOW_MASKS[n]
    as_int = (P._SMALL_HEADERS[opcode][n] | (k << 16) | (masked << 48)).to_bytes(n + 6, "little")
    assert as_bytes == as_int
    if P._C_FRAME is not None:  # the C path's third form, the key taken at an offset
        keys = b"\xaa" * 8 + key + b"\x55" * 4
        assert P._C_FRAME(P._SMALL_HEAD_BYTES[opcode][n], keys, 8, data) == as_bytes
    # Unmasked again (and the MASK bit cleared, as a server would send it), it reads back.
    unmasked = bytes([as_bytes[0], as_bytes[1] & 0x7F]) + _py_mask_payload(as_bytes[6:], key)
    assert Protocol().receive_data(unmasked) == [payload]


def test_masking_keys_fresh_per_frame_and_held_compactly() -> None:
    proto = Protocol()
    keys = []
    for i in range(600):  # past the first small batch and past one full batch
        frame = proto.encode_message(b"x" * (i % 40))
        assert isinstance(frame, bytes)
        keys.append(frame[2:6])
    # 600 random 32-bit keys: a repeat would mean a key was reused (chance ~4e-5).
    assert len(set(keys)) == len(keys)
    # The unused keys are held as bytes (at most one 1 KiB batch), not as a list of ints.
    assert isinstance(proto._key_buf, bytes) and len(proto._key_buf) <= 1024


def _outcome(events: list) -> list:
    out = []
    for e in events:
        if isinstance(e, Failure):
            out.append(("failure", type(e.error).__name__, e.error.code, str(e.error)))
        else:
            out.append(e)
    return out


def _random_stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.random()
        size = rng.choice([0, 1, 5, 125, 126, 127, 200, 65535, 65536, 70000])
        if kind < 0.35:
            text = rng.choice(["", "a", "h\u00e9llo", "\U0001d11e", "\u65e5\u672c"]) * (size // 4 + 1)
            parts.append(frame(1, text.encode()[:size] if rng.random() < 0.2 else text.encode()))
        elif kind < 0.6:
            parts.append(frame(2, bytes(rng.randrange(256) for _ in range(min(size, 300))) * (size // 300 + 1)))
        elif kind < 0.7:
            parts.append(frame(rng.choice([9, 10]), b"p" * rng.randrange(0, 126)))
        elif kind < 0.8:  # a fragmented message, or a stray continuation
            parts.append(frame(rng.choice([0, 1, 2]), b"frag", fin=False) + frame(0, b"end"))
        elif kind < 0.85:  # invalid UTF-8 in a text frame
            parts.append(frame(1, b"ok\xff\xfe"))
        elif kind < 0.9:  # a length that is not minimally encoded, or with the top bit
            parts.append(rng.choice([b"\x81\x7e\x00\x05hello", b"\x82\x7f" + bytes(8) + b"x",
                                     b"\x82\x7f\x80" + bytes(7)]))
        elif kind < 0.95:  # masked, RSV set, reserved opcode
            parts.append(rng.choice([b"\x81\x82abcdxx", b"\xc1\x01x", b"\x83\x00", b"\x91\x01x"]))
        else:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
    return b"".join(parts)


def test_c_short_path_and_python_loop_agree_on_random_streams() -> None:
    """Differential check of the receive side: the same bytes, split at random, give the
    same events and the same failure with and without the C short path."""
    import wsclient.protocol as protocol_module

    found = _c_paths()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the C accelerator wsclient._speedups is not built")
        pytest.skip("the C accelerator wsclient._speedups is not built")
    scan = found[0]
    rng = random.Random(6455)
    for _ in range(300):
        stream = _random_stream(rng)
        cuts = sorted(rng.sample(range(1, len(stream)), min(3, len(stream) - 1))) if len(stream) > 1 else []
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        limits = rng.choice([{}, {"max_frame_size": 100}, {"max_message_size": 130}])
        results = []
        for implementation in (None, scan):
            protocol_module._C_SCAN = implementation
            try:
                p = Protocol(**limits)
                events: list = []
                for piece in pieces:
                    events += p.receive_data(piece)
                results.append(_outcome(events))
            finally:
                protocol_module._C_SCAN = scan
        assert results[0] == results[1], stream[:80]
