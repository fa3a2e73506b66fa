"""Unit tests of permessage-deflate (RFC 7692): options, negotiation and the codec.

The peer is played by plain ``zlib`` objects used the way RFC 7692 section 7.2 describes, so
what ``PerMessageDeflate`` produces is checked against an independent inflater and what it
consumes comes from an independent deflater.
"""

from __future__ import annotations

import os
import random
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from wsclient.exceptions import ConnectFailed, HandshakeError, PayloadTooBig, ProtocolError
from wsclient.extensions import (
    DeflateOptions,
    NegotiationError,
    PerMessageDeflate,
    resolve_compression,
)

TAIL = b"\x00\x00\xff\xff"
Params = list[tuple[str, "str | None"]]


# -- helpers: the peer's side, with zlib directly --------------------------------------------


class PeerInflater:
    """The server's inflater: decodes what the client sent (RFC 7692 section 7.2.2)."""

    def __init__(self, wbits: int = 15, *, fresh_per_message: bool = False) -> None:
        self.wbits = wbits
        self.fresh = fresh_per_message
        self.obj = zlib.decompressobj(-wbits)

    def message(self, payload: bytes) -> bytes:
        if self.fresh:
            self.obj = zlib.decompressobj(-self.wbits)
        return self.obj.decompress(payload + TAIL)


class PeerDeflater:
    """The server's compressor: makes the payloads that the client inflates."""

    def __init__(self, wbits: int = 15, *, no_context_takeover: bool = False) -> None:
        self.wbits = wbits
        self.fresh = no_context_takeover
        self.obj = zlib.compressobj(9, zlib.DEFLATED, -wbits)

    def message(self, data: bytes) -> bytes:
        if self.fresh:
            self.obj = zlib.compressobj(9, zlib.DEFLATED, -self.wbits)
        out = self.obj.compress(data) + self.obj.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]


def split(payload: bytes, sizes: list[int]) -> Iterator[tuple[bytes, bool]]:
    """Cut a message payload into frames of the given sizes (the rest goes last)."""
    pos = 0
    for size in sizes:
        yield payload[pos : pos + size], False
        pos += size
    yield payload[pos:], True


def inflate_message(ext: PerMessageDeflate, frames: Iterator[tuple[bytes, bool]], limit: int) -> bytes:
    """Feed a message's frames as the protocol does: the budget shrinks with each frame."""
    out = bytearray()
    for data, fin in frames:
        out += ext.decompress(data, fin, limit - len(out))
    return bytes(out)


def text(n: int, seed: int = 0) -> bytes:
    """Compressible, non-trivial data (words from a small vocabulary)."""
    rnd = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"websocket", b"frame", b'{"id": ', b"42}"]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + b" "
    return bytes(out[:n])


def negotiate(params: Params | None = None, **options: object) -> PerMessageDeflate:
    return DeflateOptions(**options).accept(params or [])  # type: ignore[arg-type]


# -- resolve_compression ---------------------------------------------------------------------


def test_resolve_compression_deflate_gives_defaults() -> None:
    assert resolve_compression("deflate") == DeflateOptions()


@pytest.mark.parametrize("off", [None, False])
def test_resolve_compression_off(off: object) -> None:
    assert resolve_compression(off) is None


def test_resolve_compression_keeps_options() -> None:
    options = DeflateOptions(compress_level=1)
    assert resolve_compression(options) is options


@pytest.mark.parametrize("bad", [True, "gzip", "Deflate", "", 0, 1, {}, b"deflate"])
def test_resolve_compression_refuses_anything_else(bad: object) -> None:
    with pytest.raises(ValueError, match="compression"):
        resolve_compression(bad)


# -- DeflateOptions: validation and offer ----------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"server_max_window_bits": "10"},
        {"server_max_window_bits": 10.0},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": False},
        {"client_max_window_bits": "15"},
        {"server_no_context_takeover": 1},
        {"client_no_context_takeover": None},
        {"compress_level": -2},
        {"compress_level": 10},
        {"compress_level": True},
        {"mem_level": 0},
        {"mem_level": 10},
        {"min_size": -1},
        {"min_size": 1.5},
        {"min_size": False},
    ],
)
def test_options_refuse_bad_values(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        DeflateOptions(**options)  # type: ignore[arg-type]


def test_options_accept_every_valid_window() -> None:
    for bits in range(8, 16):
        DeflateOptions(server_max_window_bits=bits, client_max_window_bits=bits)
    DeflateOptions(client_max_window_bits=None, compress_level=-1, mem_level=1, min_size=0)
    DeflateOptions(compress_level=9, mem_level=9)


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DeflateOptions().min_size = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "offer"),
    [
        ({}, "permessage-deflate; client_max_window_bits"),
        ({"client_max_window_bits": None}, "permessage-deflate"),
        ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=10"),
        (
            {"server_max_window_bits": 12, "client_max_window_bits": None},
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 9,
                "client_max_window_bits": 8,
            },
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=9; client_max_window_bits=8"
            ),
        ),
    ],
)
def test_offer(options: dict[str, object], offer: str) -> None:
    assert DeflateOptions(**options).offer() == offer  # type: ignore[arg-type]


# -- negotiation: what the server may answer ---------------------------------------------------


def test_accept_empty_answer_gives_defaults() -> None:
    ext = negotiate([])
    assert ext.name == "permessage-deflate"
    assert ext.params == {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": 15,
        "client_max_window_bits": 15,
    }


def test_accept_every_parameter() -> None:
    ext = negotiate(
        [
            ("server_no_context_takeover", None),
            ("client_no_context_takeover", None),
            ("server_max_window_bits", "10"),
            ("client_max_window_bits", "11"),
        ],
        server_no_context_takeover=True,
        server_max_window_bits=12,
    )
    assert ext.params == {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 10,
        "client_max_window_bits": 11,
    }


def test_server_may_add_no_context_takeover_and_window_bits_unasked() -> None:
    # RFC 7692 7.1.1.1, 7.1.1.2 and 7.1.2.1: the server may add these on its own.
    ext = negotiate(
        [
            ("server_no_context_takeover", None),
            ("client_no_context_takeover", None),
            ("server_max_window_bits", "9"),
        ]
    )
    assert ext.params["server_no_context_takeover"] is True
    assert ext.params["client_no_context_takeover"] is True
    assert ext.params["server_max_window_bits"] == 9


def test_our_client_no_context_takeover_holds_without_the_servers_echo() -> None:
    ext = negotiate([], client_no_context_takeover=True)
    assert ext.params["client_no_context_takeover"] is True


def test_offered_client_window_binds_us_without_an_answer() -> None:
    assert negotiate([], client_max_window_bits=10).params["client_max_window_bits"] == 10


@pytest.mark.parametrize("value", ["8", "9", "10", "15"])
def test_server_may_choose_client_window_when_offered_without_value(value: str) -> None:
    ext = negotiate([("client_max_window_bits", value)])
    assert ext.params["client_max_window_bits"] == int(value)


@pytest.mark.parametrize(
    ("params", "options", "message"),
    [
        ([("x_param", None)], {}, "unknown parameter"),
        ([("Server_No_Context_Takeover", None)], {}, "unknown parameter"),
        ([("server_no_context_takeover", None)] * 2, {}, "duplicate"),
        ([("client_no_context_takeover", None)] * 2, {}, "duplicate"),
        ([("server_max_window_bits", "10"), ("server_max_window_bits", "10")], {}, "duplicate"),
        ([("client_max_window_bits", "10"), ("client_max_window_bits", "9")], {}, "duplicate"),
        ([("server_no_context_takeover", "1")], {}, "takes no value"),
        ([("client_no_context_takeover", "")], {}, "takes no value"),
        ([("server_max_window_bits", None)], {}, "needs a value"),
        ([("client_max_window_bits", None)], {}, "needs a value"),
        ([("server_max_window_bits", "7")], {}, "invalid"),
        ([("server_max_window_bits", "16")], {}, "invalid"),
        ([("server_max_window_bits", "010")], {}, "invalid"),
        ([("server_max_window_bits", "09")], {}, "invalid"),
        ([("server_max_window_bits", "+9")], {}, "invalid"),
        ([("server_max_window_bits", " 9")], {}, "invalid"),
        ([("server_max_window_bits", "9 ")], {}, "invalid"),
        ([("server_max_window_bits", "")], {}, "invalid"),
        ([("server_max_window_bits", "ten")], {}, "invalid"),
        ([("server_max_window_bits", "1\u0665")], {}, "invalid"),  # a non-ASCII digit
        ([("client_max_window_bits", "1")], {}, "invalid"),
        ([("client_max_window_bits", "100")], {}, "invalid"),
        # 7.1.1.1: an offered server_no_context_takeover must be in an accepting answer.
        ([], {"server_no_context_takeover": True}, "offered but not accepted"),
        # 7.1.2.1: an offered server_max_window_bits must be answered, with no larger value.
        ([], {"server_max_window_bits": 10}, "offered but not accepted"),
        ([("server_max_window_bits", "11")], {"server_max_window_bits": 10}, "larger"),
        # 7.1.2.2: client_max_window_bits only when offered, and no larger than offered.
        ([("client_max_window_bits", "15")], {"client_max_window_bits": None}, "not offered"),
        ([("client_max_window_bits", "11")], {"client_max_window_bits": 10}, "larger"),
    ],
)
def test_accept_refuses(params: Params, options: dict[str, object], message: str) -> None:
    with pytest.raises(NegotiationError, match=message):
        negotiate(params, **options)


def test_negotiation_error_is_a_handshake_error() -> None:
    assert issubclass(NegotiationError, HandshakeError)
    assert issubclass(NegotiationError, ConnectFailed)


def test_equal_window_answer_is_fine() -> None:
    ext = negotiate([("server_max_window_bits", "10")], server_max_window_bits=10)
    assert ext.params["server_max_window_bits"] == 10


# -- codec: sending ---------------------------------------------------------------------------


def test_compress_round_trips_with_context_takeover() -> None:
    ext = negotiate([])
    peer = PeerInflater()
    messages = [text(5000, seed) for seed in range(5)] + [text(5000, 0)] * 3
    sizes = []
    for message in messages:
        payload = ext.compress(message)
        assert payload is not None
        assert not payload.endswith(TAIL)
        assert peer.message(payload) == message
        sizes.append(len(payload))
    # With the history kept, repeating an earlier message costs next to nothing.
    assert sizes[-1] < sizes[0] // 10


def test_compress_round_trips_without_context_takeover() -> None:
    ext = negotiate([("client_no_context_takeover", None)])
    peer = PeerInflater(fresh_per_message=True)  # each message must stand alone
    sizes = []
    for message in [text(5000, 1)] * 4 + [text(300, 2), text(70_000, 3)]:
        payload = ext.compress(message)
        assert payload is not None
        assert peer.message(payload) == message
        sizes.append(len(payload))
    assert sizes[0] == sizes[1] == sizes[2] == sizes[3]


def test_compress_large_message_round_trips() -> None:
    ext = negotiate([])
    message = text(3_000_000, 7)
    payload = ext.compress(message)
    assert payload is not None and len(payload) < len(message) // 3
    assert PeerInflater().message(payload) == message


def test_small_messages_are_sent_uncompressed_and_keep_the_history_in_step() -> None:
    ext = negotiate([], min_size=64)
    peer = PeerInflater()
    assert ext.compress(b"") is None
    assert ext.compress(b"x" * 63) is None
    first = ext.compress(text(64, 1))
    assert first is not None and peer.message(first) == text(64, 1)
    assert ext.compress(b"small") is None  # never seen by the peer's inflater either
    second = ext.compress(text(200, 2))
    assert second is not None and peer.message(second) == text(200, 2)


def test_min_size_zero_compresses_even_empty_messages() -> None:
    ext = negotiate([], min_size=0)
    peer = PeerInflater()
    payload = ext.compress(b"")
    assert payload is not None
    assert peer.message(payload) == b""
    assert peer.message(ext.compress(b"a") or b"!") == b"a"


def test_incompressible_message_goes_uncompressed_without_context_takeover() -> None:
    ext = negotiate([], client_no_context_takeover=True)
    assert ext.compress(os.urandom(4096)) is None
    message = text(4096)
    payload = ext.compress(message)
    assert payload is not None and PeerInflater().message(payload) == message


def test_incompressible_message_still_compressed_with_context_takeover() -> None:
    # Sending it raw would leave the peer's history behind ours, so it must be compressed.
    ext = negotiate([])
    peer = PeerInflater()
    noise = os.urandom(4096)
    payload = ext.compress(noise)
    assert payload is not None and peer.message(payload) == noise
    assert peer.message(ext.compress(noise) or b"") == noise


@pytest.mark.parametrize("level", [-1, 0, 1, 9])
@pytest.mark.parametrize("mem_level", [1, 9])
def test_compress_levels(level: int, mem_level: int) -> None:
    ext = negotiate([], compress_level=level, mem_level=mem_level)
    message = text(20_000, level)
    payload = ext.compress(message)
    assert payload is not None and PeerInflater().message(payload) == message


def periodic(period: int, total: int) -> bytes:
    """Random bytes repeated with a given period: matches exist only ``period`` bytes back."""
    block = random.Random(period).randbytes(period)
    return (block * (total // period + 1))[:total]


@pytest.mark.parametrize("bits", range(8, 16))
def test_client_window_bits_are_honoured(bits: int) -> None:
    # The peer inflates with exactly the negotiated window: any farther reference fails.
    ext = negotiate([("client_max_window_bits", str(bits))])
    peer = PeerInflater(bits)
    for period in (200, 300, 1000, 5000, 40_000):
        message = periodic(period, 3 * period + 1000)
        assert peer.message(ext.compress(message) or b"") == message


def test_window_bits_8_compresses_with_9_within_256_bytes() -> None:
    # zlib cannot deflate raw with a 256-byte window; its 512-byte window never reaches
    # farther than 250 bytes back, which a 256-byte inflater handles.
    ext = negotiate([("client_max_window_bits", "8")])
    peer = PeerInflater(8)
    message = periodic(240, 10_000)
    payload = ext.compress(message)
    assert payload is not None and len(payload) < 1000  # the 240-byte period was found
    assert peer.message(payload) == message


# -- codec: receiving --------------------------------------------------------------------------


@pytest.mark.parametrize("server_no_context_takeover", [False, True])
def test_decompress_round_trips(server_no_context_takeover: bool) -> None:
    answer: Params = [("server_no_context_takeover", None)] if server_no_context_takeover else []
    ext = negotiate(answer)
    peer = PeerDeflater(no_context_takeover=server_no_context_takeover)
    for seed in [1, 2, 1, 1, 3]:
        message = text(10_000, seed)
        payload = peer.message(message)
        assert ext.decompress(payload, True, 1 << 20) == message


def test_decompress_across_frames_of_every_size() -> None:
    ext = negotiate([])
    peer = PeerDeflater()
    for seed, cuts in enumerate([[0], [1], [1, 1, 1], [0, 0, 5, 0], [7, 100, 3], [10_000]]):
        message = text(8000, seed)
        payload = peer.message(message)
        assert inflate_message(ext, split(payload, cuts), 1 << 20) == message


def test_decompress_empty_message() -> None:
    ext = negotiate([])
    peer = PeerDeflater()
    assert ext.decompress(peer.message(b""), True, 0) == b""
    assert ext.decompress(b"\x00", True, 0) == b""  # RFC 7692 7.2.3.6
    assert ext.decompress(peer.message(b"after"), True, 10) == b"after"


@pytest.mark.parametrize("bits", range(8, 16))
def test_decompress_with_negotiated_server_window(bits: int) -> None:
    ext = negotiate([("server_max_window_bits", str(bits))], server_max_window_bits=bits)
    peer = PeerDeflater(max(bits, 9))
    for period in (100, 250, 3000):
        message = periodic(period, 4 * period)
        assert ext.decompress(peer.message(message), True, 1 << 20) == message


def test_decompress_message_ending_with_a_final_block() -> None:
    # RFC 7692 7.2.3.4: a sender may end a message with BFINAL set; the next one is a new stream.
    ext = negotiate([])
    for message in (text(3000, 1), text(3000, 2)):
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = deflater.compress(message) + deflater.flush(zlib.Z_FINISH)
        assert ext.decompress(payload, True, 1 << 20) == message
    assert ext.decompress(PeerDeflater().message(b"third"), True, 100) == b"third"


def test_decompress_refuses_data_after_a_final_block() -> None:
    ext = negotiate([])
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = deflater.compress(b"done") + deflater.flush(zlib.Z_FINISH)
    with pytest.raises(ProtocolError) as info:
        ext.decompress(payload + b"\x02\x00", True, 100)
    assert info.value.code == 1007


def test_decompress_final_block_in_an_early_frame() -> None:
    ext = negotiate([])
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = deflater.compress(b"done") + deflater.flush(zlib.Z_FINISH)
    assert ext.decompress(payload, False, 100) == b"done"
    assert ext.decompress(b"", True, 96) == b""
    with pytest.raises(ProtocolError):
        ext = negotiate([])
        ext.decompress(payload, False, 100)
        ext.decompress(b"\x02\x00", False, 96)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff",  # block type 3 does not exist
        b"\x00\x05\x00\x00\x00",  # stored block whose LEN and NLEN disagree
        b"\xfc\xff\xff",  # dynamic block declaring 288 literal/length codes
    ],
)
def test_corrupt_data_fails_with_1007(garbage: bytes) -> None:
    ext = negotiate([])
    with pytest.raises(ProtocolError) as info:
        ext.decompress(garbage, True, 1 << 20)
    assert info.value.code == 1007
    assert not isinstance(info.value, PayloadTooBig)
    assert isinstance(info.value.__cause__, zlib.error)


def test_corrupt_reference_before_the_start_fails_with_1007() -> None:
    # A fixed-Huffman block whose first symbol is a match: it points before any output.
    with pytest.raises(ProtocolError) as info:
        negotiate([]).decompress(b"\x03\x02\x00\x00", True, 1 << 20)
    assert info.value.code == 1007


# -- codec: bounded inflate --------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A ~100 KB payload that inflates to 100 MiB of zeros (deflate tops out near 1:1032).

    Built from one compressed MiB and 99 copies of the steady-state segment, so making it
    costs no 100 MiB either.
    """
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = deflater.compress(zeros) + deflater.flush(zlib.Z_SYNC_FLUSH)
    steady = deflater.compress(zeros) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert steady == deflater.compress(zeros) + deflater.flush(zlib.Z_SYNC_FLUSH)
    return (first + steady * 99)[:-4]


def test_bomb_is_what_it_claims(bomb: bytes) -> None:
    inflater = zlib.decompressobj(-15)
    total, data = 0, bomb + TAIL
    while data:
        total += len(inflater.decompress(data, 1 << 24))
        data = inflater.unconsumed_tail
    assert total == 100 << 20
    assert len(bomb) < 110_000


@pytest.mark.parametrize("fin", [True, False])
def test_bomb_in_one_frame_raises_without_allocating(bomb: bytes, fin: bool) -> None:
    ext = negotiate([])
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig) as info:
            ext.decompress(bomb, fin, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == 1009
    assert peak < 4 << 20  # the 1 MiB budget (plus one byte), not 100 MiB


def test_bomb_in_small_frames_raises_once_the_budget_is_spent(bomb: bytes) -> None:
    ext = negotiate([])
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            inflate_message(ext, split(bomb, [1024] * (len(bomb) // 1024)), 8 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20


def test_budget_is_inclusive() -> None:
    peer = PeerDeflater()
    message = text(1000)
    payload = peer.message(message)
    assert negotiate([]).decompress(payload, True, 1000) == message
    with pytest.raises(PayloadTooBig):
        negotiate([]).decompress(PeerDeflater().message(message), True, 999)


def test_budget_applies_across_frames() -> None:
    payload = PeerDeflater().message(text(3000))
    ext = negotiate([])
    assert inflate_message(ext, split(payload, [10, 20, 30]), 3000) == text(3000)
    with pytest.raises(PayloadTooBig):
        inflate_message(negotiate([]), split(payload, [10, 20, 30]), 2999)


def test_zero_budget_still_bounded() -> None:
    # A budget of 0 must not turn into zlib's "max_length=0 means unlimited".
    with pytest.raises(PayloadTooBig):
        negotiate([]).decompress(PeerDeflater().message(b"x"), True, 0)


# -- both sides at once ------------------------------------------------------------------------


@pytest.mark.parametrize("takeover", [True, False])
def test_two_codecs_talk(takeover: bool) -> None:
    """Our compressor feeds our own inflater (as if both ends were wsclient)."""
    answer: Params = [] if takeover else [("client_no_context_takeover", None)]
    sender, receiver = negotiate(answer), negotiate([])
    for seed in range(20):
        message = text(100 + seed * 997, seed % 4)
        payload = sender.compress(message)
        assert payload is not None
        cuts = [len(payload) // 3, 1]
        assert inflate_message(receiver, split(payload, cuts), 1 << 20) == message


def test_repr_shows_the_settings() -> None:
    assert "client_max_window_bits" in repr(negotiate([]))


def test_server_no_context_takeover_refuses_references_to_earlier_messages() -> None:
    peer = PeerDeflater()  # keeps its history although it agreed not to
    message = text(2000, 5)
    first, second = peer.message(message), peer.message(message)
    lenient = negotiate([])
    assert lenient.decompress(first, True, 1 << 20) == message
    assert lenient.decompress(second, True, 1 << 20) == message
    strict = negotiate([("server_no_context_takeover", None)], server_no_context_takeover=True)
    assert strict.decompress(first, True, 1 << 20) == message
    with pytest.raises(ProtocolError) as info:
        strict.decompress(second, True, 1 << 20)
    assert info.value.code == 1007


def test_full_flush_output_equals_a_fresh_compressor() -> None:
    ext = negotiate([("client_no_context_takeover", None)])
    for seed in range(4):
        message = text(3000, seed % 2)
        fresh = zlib.compressobj(-1, zlib.DEFLATED, -15)
        expected = (fresh.compress(message) + fresh.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert ext.compress(message) == expected
