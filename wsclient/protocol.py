"""The Sans-I/O WebSocket state machine of the client side (RFC 6455, RFC 7692 framing).

Bytes go in through :meth:`Protocol.receive_data`; whole messages, frames and control
events come out as a list; bytes to write come out of :meth:`Protocol.data_to_send` (for
answers the protocol makes by itself: the close echo and the close after a failure) and of
the ``encode_*`` methods (for what the application sends). No sockets, threads or clocks.

Received messages are returned as plain ``str`` / ``bytes`` objects, not wrapped in an event
object: that is the common case and the hot path of the reader thread.
"""

from __future__ import annotations

import codecs
import enum
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import PayloadTooBig, ProtocolError
from .frames import (
    _LOW_MASKS,
    _REPUNITS,
    Frame,
    Opcode,
    c_mask_frame,
    c_scan_messages,
    encode_close_payload,
    encode_header,
    mask_payload,
    parse_close_payload,
)

if TYPE_CHECKING:
    from .extensions.permessage_deflate import PerMessageDeflate

__all__ = ["Close", "Event", "Failure", "Ping", "Pong", "Protocol", "State"]

logger = logging.getLogger("wsclient.protocol")

_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# Masking keys come from the OS CSPRNG in batches, kept as bytes and taken 4 at a time: a
# list of 256 ints held about 10 KiB per connection that had sent anything (1,000
# connections: 10 MB); 1 KiB of bytes holds the same keys. The first batch is small, since
# many connections send only a few frames (connect + close sends one).
_FIRST_KEY_BYTES = 64
_KEY_BYTES = 1024
_from_bytes = int.from_bytes
# First two bytes of a small masked frame (FIN, opcode; MASK, length) as a little-endian int.
_SMALL_HEADERS = {
    op: tuple((0x80 | op) | ((0x80 | n) << 8) for n in range(126)) for op in (1, 2)
}
# The same two bytes as ``bytes``, for the C short path: the whole small frame in one call
# and one allocation (an extension built from an older checkout may not have it; the
# integer form is used then). Header + key + C mask(payload), joined in Python, took
# 354-384 ns for 16-125 bytes against 698-974 ns for the integer form (timeit, 200k
# calls); mask_frame in place of that join measured 27.0k -> 25.6k instructions per echo
# round trip (benchmarks.instructions, one run each).
_SMALL_HEAD_BYTES = {op: tuple(h.to_bytes(2, "little") for h in heads) for op, heads in _SMALL_HEADERS.items()}
_C_SCAN = c_scan_messages
_C_FRAME = c_mask_frame

# A frame whose payload is not complete in the buffer and is at least this large is
# collected in a list of chunks (joined once) instead of re-concatenating the buffer.
_COLLECT_THRESHOLD = 1 << 16


class State(enum.IntEnum):
    OPEN = 1
    CLOSING = 2  # our close frame is sent; waiting for the peer's
    CLOSED = 3  # both close frames seen, or the stream ended


@dataclass(frozen=True, slots=True)
class Ping:
    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame (``code`` 1005 when it carried none)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The protocol failed the connection: ``error`` says why; a close frame is queued."""

    error: ProtocolError


Event = str | bytes | Frame | Ping | Pong | Close | Failure
_DATA_TYPES = (str, bytes, Frame)


class Protocol:
    """The client side of one WebSocket connection, without I/O.

    Args:
        max_frame_size: largest frame payload accepted (checked at header time).
        max_message_size: largest message accepted, after decompression.
        assemble_fragments: when False every data frame is returned as a ``Frame`` (and
            single-frame messages also as a message).
        deflate: the negotiated permessage-deflate codec, or None.
        mask: mask outgoing frames (always True for a client; False serves tests).
        initial_data: bytes the server sent right after its 101 response (read together
            with the handshake); parsed by the first :meth:`receive_data` call, before
            anything read later.

    Closing state is owned here: the connection asks (:meth:`send_close`, :meth:`fail`,
    :meth:`receive_eof`) and reads the outcome (:meth:`close_status`), never assigns it.
    """

    # Slots: a connection holds one Protocol for its life; about 200 bytes less each than a
    # __dict__ (1,000 connections: benchmarks/ scale-1000).
    __slots__ = (
        "_buf", "_collect", "_discard", "_key_at", "_key_buf", "_msg_compressed", "_msg_decoder", "_msg_opcode",
        "_msg_parts", "_msg_size", "_out", "_probe", "_small_max", "assemble_fragments",
        "close_queued", "close_received", "close_sent", "deflate", "eof", "failed", "failure",
        "fragmentation_threshold", "mask", "max_frame_size", "max_message_size", "pending_bytes", "state",
    )

    def __init__(
        self,
        *,
        max_frame_size: int = 1 << 20,
        max_message_size: int = 8 << 20,
        assemble_fragments: bool = True,
        fragmentation_threshold: int | None = 16 << 10,
        deflate: PerMessageDeflate | None = None,
        mask: bool = True,
        initial_data: bytes = b"",
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.assemble_fragments = assemble_fragments
        self.fragmentation_threshold = fragmentation_threshold
        self.deflate = deflate
        self.mask = mask
        self.state = State.OPEN
        #: Set once our close frame was handed out to be written (data_to_send/encode_close).
        self.close_sent: tuple[int, str] | None = None
        #: A close frame the protocol made by itself (echo, failure) not yet handed out.
        self.close_queued: tuple[int, str] | None = None
        #: Set once the peer's close frame was received.
        self.close_received: tuple[int, str] | None = None
        #: The ProtocolError that made us fail the connection, if any.
        self.failure: ProtocolError | None = None
        #: (code, reason) the connection was failed with (a ProtocolError, or fail()).
        self.failed: tuple[int, str] | None = None
        self.eof = False

        self._buf = bytes(initial_data)
        self._out: list[bytes] = []
        self._key_buf = b""  # masking keys not yet used start at _key_at
        self._key_at = 0
        # Largest message encode_message() serialises on its short path (one frame, 7-bit
        # length, masked, uncompressed); -1 turns the short path off.
        small = min(125, fragmentation_threshold or 125)
        self._small_max = small if mask and deflate is None else -1
        # Frame being collected in chunks: [first_byte, opcode, chunks]
        self._collect: list[Any] | None = None
        #: How many payload bytes the frame being collected still needs (0 if none). A
        #: plain attribute, not a property: the read path looks at it before every read,
        #: and a property call there cost ~600 instructions of an echo's ~27k.
        self.pending_bytes = 0
        # Partial UTF-8 check of an incomplete text frame: (frame start offset key, decoder, checked)
        self._probe: tuple[Any, int] | None = None
        # Current fragmented message (receive side).
        self._msg_opcode = 0  # 0: none in progress
        self._msg_parts: list[Any] = []
        self._msg_size = 0
        self._msg_decoder: Any = None
        self._msg_compressed = False
        self._discard = False  # after a failure: ignore all further input

    # ------------------------------------------------------------------ receive side

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; returns the events they complete."""
        events: list[Event] = []
        if self._discard or self.eof:
            return events
        try:
            if (
                _C_SCAN is not None and self._collect is None and not self._buf and not self._msg_opcode
                and self.assemble_fragments
            ):
                # The common read, whole messages only, in one C call; else _parse goes on
                # from where the C scan stopped.
                pos = _C_SCAN(data, 0, self.max_frame_size, self.max_message_size, events)
                if pos == len(data):
                    if pos:
                        self._probe = None
                else:
                    self._parse(data, events, pos)
            elif self._collect is not None:
                # The rest of a large frame (this path returned its message before the
                # filter below, so a flood of large messages after our close frame was
                # queued: 825 x 64 KiB within close_timeout in the fault suite).
                data = self._feed_collect(data, events)
                if data and not self._discard:
                    self._parse(self._buf + data if self._buf else data, events, 0)
            else:
                self._parse(self._buf + data if self._buf else data, events, 0)
        except ProtocolError as exc:
            self._fail(exc, events)
        if self.close_sent is not None and events:
            # Data after our close frame is read and dropped, never queued: memory stays
            # bounded while a flooding peer takes its time to answer the close.
            events = [e for e in events if type(e) not in _DATA_TYPES]
        return events

    def receive_eof(self) -> list[Event]:
        """The peer closed its side of the stream."""
        self.eof = True
        self.state = State.CLOSED
        self._buf = b""
        self._collect = None
        self.pending_bytes = 0
        return []

    def data_to_send(self) -> list[bytes]:
        """Bytes the protocol produced by itself (close answers); empties the buffer."""
        out, self._out = self._out, []
        if out and self.close_sent is None:
            self.close_sent = self.close_queued
        return out

    def send_close(self, code: int | None, reason: str = "") -> None:
        """Queue our close frame (``None``: no code) unless a close frame was already
        sent or queued (a failure's or an echo goes out instead); take it with
        :meth:`data_to_send`. Moves the state to CLOSING."""
        if self.close_sent is None and self.close_queued is None:
            self._queue_close(code, reason)
        if self.state is State.OPEN:
            self.state = State.CLOSING

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection for a cause outside the protocol (a keepalive timeout,
        ``drop()``): the connection ends with ``code``; a close frame carrying it is
        queued (unless the code is 1005/1006, or a close frame was sent or queued
        already) and further input is ignored."""
        self.failed = (code, reason)
        if code not in (1005, 1006) and self.close_sent is None and self.close_queued is None:
            self._queue_close(code, reason)
        if self.state is State.OPEN:
            self.state = State.CLOSING
        self._discard = True
        self._buf = b""
        self._collect = None
        self.pending_bytes = 0
        self._probe = None

    def close_status(self, default: tuple[int, str]) -> tuple[int, str]:
        """(code, reason) the connection ends with: the code it was failed with, else
        the peer's close frame, else ``default``."""
        return self.failed or self.close_received or default

    @property
    def has_output(self) -> bool:
        """Whether :meth:`data_to_send` has bytes (a close frame) to hand out."""
        return bool(self._out)

    @property
    def pending_whole(self) -> bool:
        """Whether the frame being collected may be read in one blocking read: it is not
        an uncompressed text frame (those are checked for UTF-8 as their bytes arrive)."""
        c = self._collect
        if c is None:
            return False
        opcode = c[1] or self._msg_opcode
        return opcode != 1 or bool(c[0] & 0x40) or (c[1] == 0 and self._msg_compressed)

    @property
    def idle(self) -> bool:
        """No partial frame is buffered: the next byte read starts a frame."""
        return not self._buf and self._collect is None

    def _parse(self, buf: bytes, events: list[Event], pos: int) -> None:
        # The hot loop: every complete frame in ``buf``. Single-frame, uncompressed data
        # messages take the short path; everything else goes through _frame().
        end = len(buf)
        max_frame = self.max_frame_size
        max_msg = self.max_message_size
        append = events.append
        fast = self.assemble_fragments
        probed = False
        # The C short path (when built) takes every simple whole message at once and stops
        # at the first frame this loop must handle; recv 100k x 1 KiB text: 5.4 -> 3.3 us
        # a message, most of what is left being the UTF-8 decoding itself.
        scan = _C_SCAN if fast else None
        while end - pos >= 2:
            if scan is not None and self._msg_opcode == 0:
                pos = scan(buf, pos, max_frame, max_msg, events)
                if end - pos < 2:
                    break
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hp = pos + 2
            if length >= 126:
                if length == 126:
                    if end - hp < 2:
                        break
                    length = (buf[hp] << 8) | buf[hp + 1]
                    hp += 2
                    if length < 126:
                        raise ProtocolError("frame length not minimally encoded")
                else:
                    if end - hp < 8:
                        break
                    length = int.from_bytes(buf[hp : hp + 8], "big")
                    hp += 8
                    if length >> 63:
                        raise ProtocolError("frame length has the most significant bit set")
                    if length < 65536:
                        raise ProtocolError("frame length not minimally encoded")
            if b1 & 0x80:
                raise ProtocolError("the server sent a masked frame")
            if length > max_frame:
                raise PayloadTooBig(f"frame of {length} bytes exceeds max_received_frame_size={max_frame}")
            pend = hp + length
            if pend > end:
                # Incomplete frame: check its header now, collect large payloads in chunks.
                self._check_header(b0, length)
                if pos:  # a frame completed in this call: any earlier probe is stale
                    self._probe = None
                probed = True
                if length >= _COLLECT_THRESHOLD:
                    self._collect = [b0, b0 & 0x0F, [buf[hp:end]] if end > hp else []]
                    self.pending_bytes = length - (end - hp)
                    self._probe_partial(b0, buf, hp, end)
                    self._buf = b""
                    return
                self._probe_partial(b0, buf, hp, end)
                break
            payload = buf[hp:pend]
            pos = pend
            if fast and self._msg_opcode == 0:
                if b0 == 0x81:
                    if length > max_msg:
                        raise PayloadTooBig(f"message exceeds max_received_message_size={max_msg}")
                    try:
                        append(payload.decode())
                    except UnicodeDecodeError:
                        raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
                    continue
                if b0 == 0x82:
                    if length > max_msg:
                        raise PayloadTooBig(f"message exceeds max_received_message_size={max_msg}")
                    append(payload)
                    continue
            self._frame(b0, payload, events)
            if self._discard:
                return
        if pos and not probed:
            self._probe = None
        self._buf = buf[pos:] if pos < end else b""

    def _feed_collect(self, data: bytes, events: list[Event]) -> bytes:
        c = self._collect
        assert c is not None
        need = self.pending_bytes
        chunks = c[2]
        if len(data) < need:
            chunks.append(data)
            self.pending_bytes = need - len(data)
            self._probe_chunk(data)
            return b""
        chunks.append(data[:need] if len(data) > need else data)
        self._collect = None
        self.pending_bytes = 0
        self._probe = None
        # One chunk (the whole payload read at once) is used as it is, without a copy.
        payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._frame(c[0], payload, events)
        return data[need:]

    def _check_header(self, b0: int, length: int) -> None:
        """Checks that must not wait for the payload (limits, opcode, flags)."""
        opcode = b0 & 0x0F
        if opcode >= 8:
            if opcode > 10:
                raise ProtocolError(f"reserved opcode {opcode}")
            if not b0 & 0x80:
                raise ProtocolError("fragmented control frame")
            if length > 125:
                raise ProtocolError("control frame payload longer than 125 bytes")
            if b0 & 0x70:
                raise ProtocolError("reserved bits set on a control frame")
            return
        if opcode > 2:
            raise ProtocolError(f"reserved opcode {opcode}")
        if b0 & 0x30:
            raise ProtocolError("reserved bits RSV2/RSV3 set without an extension")
        if opcode == 0:
            if not self._msg_opcode:
                raise ProtocolError("continuation frame without a message in progress")
            if b0 & 0x40:
                raise ProtocolError("RSV1 set on a continuation frame")
        else:
            if self._msg_opcode:
                raise ProtocolError("new data frame while a fragmented message is in progress")
            if b0 & 0x40 and self.deflate is None:
                raise ProtocolError("RSV1 set but no extension was negotiated")
        compressed = bool(b0 & 0x40) if opcode else self._msg_compressed
        if not compressed and self._msg_size + length > self.max_message_size:
            raise PayloadTooBig(
                f"message exceeds max_received_message_size={self.max_message_size}"
            )

    # Fail fast on invalid UTF-8 inside a text frame whose end has not arrived yet: the
    # probe is (decoder, payload bytes of the incomplete frame already checked).
    def _probe_partial(self, b0: int, buf: bytes, hp: int, end: int) -> None:
        opcode = b0 & 0x0F
        if b0 & 0x40 or not (opcode == 1 or (opcode == 0 and self._msg_opcode == 1)):
            return
        if opcode == 0 and self._msg_compressed:
            return
        probe = self._probe
        if probe is None:
            dec = _utf8_decoder()
            if opcode == 0 and self._msg_decoder is not None:
                dec.setstate(self._msg_decoder.getstate())
            checked = 0
        else:
            dec, checked = probe
        if end - hp > checked:
            try:
                dec.decode(buf[hp + checked : end])
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
        self._probe = (dec, end - hp)

    def _probe_chunk(self, data: bytes) -> None:
        probe = self._probe
        if probe is None:  # the frame started as a non-probed frame: nothing to continue
            return
        try:
            probe[0].decode(data)
        except UnicodeDecodeError:
            raise ProtocolError("invalid UTF-8 in a text message", 1007) from None

    def _frame(self, b0: int, payload: bytes, events: list[Event]) -> None:
        """Handle one complete frame that did not take the fast path."""
        self._check_header(b0, len(payload))
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        if opcode >= 8:
            self._control(opcode, payload, events)
            return
        if opcode:
            self._msg_opcode = opcode
            self._msg_compressed = bool(b0 & 0x40)
            self._msg_size = 0
            self._msg_parts = []
            self._msg_decoder = _utf8_decoder() if opcode == 1 else None
        msg_opcode = self._msg_opcode
        if self._msg_compressed:
            assert self.deflate is not None
            budget = self.max_message_size - self._msg_size
            payload = self.deflate.decompress(payload, fin, budget)
        self._msg_size += len(payload)
        if self._msg_size > self.max_message_size:
            raise PayloadTooBig(f"message exceeds max_received_message_size={self.max_message_size}")
        text: str | None = None
        if msg_opcode == 1:
            try:
                text = self._msg_decoder.decode(payload, fin)
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
        if not self.assemble_fragments:
            events.append(Frame(Opcode(opcode), payload, fin))
            if fin:
                if opcode and text is not None:
                    events.append(text)
                elif opcode:
                    events.append(payload)
                self._msg_opcode = 0
                self._msg_decoder = None
                self._msg_size = 0
            return
        if fin:
            parts = self._msg_parts
            if msg_opcode == 1:
                assert text is not None
                events.append("".join(parts) + text if parts else text)
            else:
                events.append(b"".join(parts) + payload if parts else payload)
            self._msg_opcode = 0
            self._msg_parts = []
            self._msg_decoder = None
            self._msg_size = 0
        else:
            self._msg_parts.append(text if msg_opcode == 1 else payload)

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == 9:
            events.append(Ping(payload))
        elif opcode == 10:
            events.append(Pong(payload))
        else:
            try:
                code, reason = parse_close_payload(payload)
            except ValueError as exc:
                raise ProtocolError(str(exc.args[0]), exc.args[1]) from None
            self.close_received = (code, reason)
            if self.close_sent is None and self.close_queued is None:
                # Echo the peer's code (RFC 6455 section 5.5.1); 1005 is answered empty.
                self._queue_close(code if code != 1005 else None, "")
            self.state = State.CLOSED
            self._discard = True  # nothing may follow a close frame
            self._buf = b""
            events.append(Close(code, reason))

    def _fail(self, exc: ProtocolError, events: list[Event]) -> None:
        logger.debug("failing the connection: %s (code %d)", exc, exc.code)
        self.failure = exc
        self.failed = (exc.code, str(exc))
        if self.close_sent is None and self.close_queued is None:
            self._queue_close(exc.code, "")
        self.state = State.CLOSING if self.state is State.OPEN else self.state
        self._discard = True
        self._buf = b""
        self._collect = None
        self.pending_bytes = 0
        self._probe = None
        events.append(Failure(exc))

    def _queue_close(self, code: int | None, reason: str) -> None:
        self._out.append(self._encode(8, encode_close_payload(code, reason), True, False))
        self.close_queued = (1005 if code is None else code, reason)

    # ------------------------------------------------------------------ send side

    def _refill_keys(self) -> bytes:
        """A fresh batch of masking keys from the OS CSPRNG (see _KEY_BYTES)."""
        buf = self._key_buf = os.urandom(_KEY_BYTES if self._key_buf else _FIRST_KEY_BYTES)
        self._key_at = 0
        return buf

    def _mask_key(self) -> bytes:
        """A fresh 4-byte masking key (as it goes on the wire)."""
        at = self._key_at
        buf = self._key_buf
        if at >= len(buf):
            buf = self._refill_keys()
            at = 0
        self._key_at = at + 4
        return buf[at : at + 4]

    def _encode(self, opcode: int, payload: bytes | memoryview, fin: bool, rsv1: bool) -> bytes:
        first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        if self.mask:
            key = self._mask_key()
            return encode_header(first, len(payload), key) + mask_payload(payload, key)
        return encode_header(first, len(payload), None) + bytes(payload)

    def encode_message(self, data: str | bytes | bytearray | memoryview) -> bytes | list[bytes]:
        """The serialised frames of one whole message: text for ``str``, else binary.

        Compresses when permessage-deflate is on and fragments past the threshold.
        Returns one ``bytes`` for a single frame, else a list of pieces (each frame's
        header, then its payload) to be written in order.
        """
        frames = self.encode_message_stream(data)
        return frames if isinstance(frames, bytes) else list(frames)

    def encode_message_stream(self, data: str | bytes | bytearray | memoryview) -> bytes | Iterator[bytes]:
        """:meth:`encode_message`, with a fragmented message's pieces made as they are taken.

        A large message is then masked a few fragments ahead of the write instead of all at
        once: the connection writes 16 fragments (256 KiB) at a time, so its memory stays
        small and warm. Sending 64 messages of 16 MiB measured 11.9x websocket-client this
        way against 6.2x with the whole message masked first (benchmarks/grouped_send.py):
        freeing 16 MiB at once hands the heap back to the kernel, and every page of the next
        message faulted in again. The pieces must be taken in order, under the send lock.
        """
        if isinstance(data, str):
            opcode = 1
            payload: bytes = data.encode()
        else:
            opcode = 2
            payload = data if type(data) is bytes else bytes(data)
        n = len(payload)
        if n <= self._small_max:
            # The common small message as one integer, little-endian from the first byte:
            # the two header bytes, the 32-bit key, then the payload XOR the key repeated.
            # The key is taken inline (_mask_key's body): a method call here is ~3 % of a
            # 16-byte send's own cost.
            at = self._key_at
            buf = self._key_buf
            if at >= len(buf):
                buf = self._refill_keys()
                at = 0
            self._key_at = at + 4
            if _C_FRAME is not None:
                return _C_FRAME(_SMALL_HEAD_BYTES[opcode][n], buf, at, payload)
            k = _from_bytes(buf[at : at + 4], "little")
            return (
                _SMALL_HEADERS[opcode][n]
                | (k << 16)
                | (((_from_bytes(payload, "little") ^ k * _REPUNITS[n]) & _LOW_MASKS[n]) << 48)
            ).to_bytes(n + 6, "little")
        rsv1 = False
        if self.deflate is not None:
            compressed = self.deflate.compress(payload)
            if compressed is not None:
                payload = compressed
                rsv1 = True
                n = len(payload)
        limit = self.fragmentation_threshold
        if limit is None or n <= limit:
            return self._encode(opcode, payload, True, rsv1)
        return self._fragments(opcode | (0x40 if rsv1 else 0), payload, limit)

    def _fragments(self, first: int, payload: bytes, limit: int) -> Iterator[bytes]:
        # Header and masked payload of each frame as separate pieces, in order, so that the
        # connection can hand them to sendmsg() without concatenating them.
        view = memoryview(payload)
        n = len(payload)
        start = 0
        while start < n:
            stop = start + limit
            chunk = view[start:stop]
            b0 = first | (0x80 if stop >= n else 0)
            if self.mask:
                key = self._mask_key()
                yield encode_header(b0, len(chunk), key)
                yield mask_payload(chunk, key)
            else:
                yield encode_header(b0, len(chunk), None)
                yield bytes(chunk)
            first = 0  # continuation frames: opcode 0, no RSV1
            start = stop

    def encode_frame(self, frame: Frame) -> bytes:
        """Serialise a user-built frame as given (the caller owns the order of frames)."""
        if frame.is_control:
            if len(frame.payload) > 125:
                raise ValueError("a control frame payload may be at most 125 bytes")
            if not frame.fin:
                raise ValueError("a control frame cannot be fragmented (fin=False)")
        first = (
            (0x80 if frame.fin else 0)
            | (0x40 if frame.rsv1 else 0)
            | (0x20 if frame.rsv2 else 0)
            | (0x10 if frame.rsv3 else 0)
            | frame.opcode
        )
        payload = frame.payload
        if frame.opcode == Opcode.CLOSE:
            # A close frame built by the user still closes our side.
            try:
                self.close_sent = parse_close_payload(payload)
            except ValueError:
                self.close_sent = (1005, "")
            if self.state is State.OPEN:
                self.state = State.CLOSING
        if self.mask:
            key = self._mask_key()
            return encode_header(first, len(payload), key) + mask_payload(payload, key)
        return encode_header(first, len(payload), None) + payload

    def encode_ping(self, data: bytes) -> bytes:
        return self._encode(9, _control_payload(data), True, False)

    def encode_pong(self, data: bytes) -> bytes:
        return self._encode(10, _control_payload(data), True, False)

    def encode_close(self, code: int | None, reason: str = "") -> bytes:
        """Our close frame; moves the state to CLOSING. ``None``/1005 sends no code."""
        payload = encode_close_payload(code, reason)
        self.close_sent = (1005 if code is None else code, reason)
        if self.state is State.OPEN:
            self.state = State.CLOSING
        return self._encode(8, payload, True, False)


def _control_payload(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    if len(data) > 125:
        raise ValueError("a control frame payload may be at most 125 bytes")
    return data
