"""permessage-deflate (RFC 7692): options, negotiation and the per-connection codec.

Three pieces:

* :class:`DeflateOptions` -- what the user asks for (``compression=`` option), validated at
  construction. :meth:`DeflateOptions.offer` renders the ``Sec-WebSocket-Extensions`` offer and
  :meth:`DeflateOptions.accept` checks the server's answer against RFC 7692 section 7.
* :class:`PerMessageDeflate` -- one per connection, built by :meth:`DeflateOptions.accept`.
  It compresses whole outgoing messages and inflates incoming frames with a bounded output.
* :func:`resolve_compression` -- turns the ``compression`` option into options or ``None``.

The module is Sans-I/O: no sockets, threads or clocks. The protocol owns RSV1 (it sets it on
the first frame of a message whose payload came from :meth:`PerMessageDeflate.compress`, and
feeds every frame of an RSV1 message to :meth:`PerMessageDeflate.decompress`).
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from typing import Any

from ..exceptions import HandshakeError, PayloadTooBig, ProtocolError

__all__ = [
    "EXTENSION_NAME",
    "DeflateOptions",
    "NegotiationError",
    "PerMessageDeflate",
    "resolve_compression",
]

logger = logging.getLogger("wsclient.extensions")

#: The extension token of RFC 7692.
EXTENSION_NAME = "permessage-deflate"

#: The empty stored block that ends every flushed message (RFC 7692 section 7.2.1).
_TAIL = b"\x00\x00\xff\xff"

#: Window-bits values as RFC 7692 section 7.1.2 writes them: 8..15, no leading zero.
_WINDOW_BITS_RE = re.compile(r"(?:[89]|1[0-5])\Z")

_PARAMETERS = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)


class NegotiationError(HandshakeError):
    """The server's permessage-deflate answer breaks RFC 7692 section 7."""


def _check_bool(name: str, value: Any) -> None:
    if value is not True and value is not False:
        raise ValueError(f"{name} must be True or False, not {value!r}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, not {value!r}")


def _zlib_window_bits(bits: int) -> int:
    """The raw-deflate ``wbits`` that zlib is given for a negotiated window of ``bits``.

    zlib refuses a 256-byte window (8) for raw deflate since 1.2.9. A 512-byte window (9) is
    safe in its place: zlib never emits a match farther back than the window size minus 262
    bytes (``MAX_DIST``), i.e. at most 250 bytes for 9, so a peer limited to 256 bytes can
    always inflate what we send. For inflating, 9 only makes us more lenient.
    """
    return -max(bits, 9)


@dataclass(frozen=True)
class DeflateOptions:
    """Options of permessage-deflate (RFC 7692), validated at construction.

    ``compression="deflate"`` means ``DeflateOptions()``: the offer
    ``permessage-deflate; client_max_window_bits`` with zlib's usual settings.
    """

    #: Ask the server to use at most a ``2**n``-byte window (8..15) when it compresses;
    #: ``None`` does not ask (15, a 32 KiB window, is then the most it may use).
    server_max_window_bits: int | None = None
    #: Our own compression window: ``True`` offers ``client_max_window_bits`` without a
    #: value (the server may pick one, else we use 15); an int (8..15) offers that value and
    #: is then the most we use; ``None`` does not offer the parameter (we use 15).
    client_max_window_bits: int | bool | None = True
    #: Ask the server to compress each message on its own (no history kept between messages).
    server_no_context_takeover: bool = False
    #: Compress each of our messages on its own (also done when the server asks for it).
    client_no_context_takeover: bool = False
    #: zlib compression level: -1 (zlib's default, 6), 0 (store only) to 9 (smallest, slowest).
    compress_level: int = -1
    #: zlib memory level, 1..9 (8 is zlib's default): memory for speed and ratio.
    mem_level: int = 8
    #: Messages shorter than this many bytes are sent uncompressed.
    min_size: int = 64

    def __post_init__(self) -> None:
        if self.server_max_window_bits is not None:
            _check_int("server_max_window_bits", self.server_max_window_bits, 8, 15)
        if self.client_max_window_bits is not None and self.client_max_window_bits is not True:
            _check_int("client_max_window_bits", self.client_max_window_bits, 8, 15)
        _check_bool("server_no_context_takeover", self.server_no_context_takeover)
        _check_bool("client_no_context_takeover", self.client_no_context_takeover)
        _check_int("compress_level", self.compress_level, -1, 9)
        _check_int("mem_level", self.mem_level, 1, 9)
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or self.min_size < 0:
            raise ValueError(f"min_size must be a non-negative int, not {self.min_size!r}")

    def offer(self) -> str:
        """The value of one ``Sec-WebSocket-Extensions`` offer for these options."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is True:
            parts.append("client_max_window_bits")
        elif self.client_max_window_bits is not None:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)

    def accept(self, params: list[tuple[str, str | None]]) -> PerMessageDeflate:
        """Check the server's parameters for our offer and build the codec.

        ``params`` are the parameters of the server's ``permessage-deflate`` element, in order,
        with quoted values already unquoted and ``None`` for a parameter without a value.
        Raises :class:`NegotiationError` when the answer breaks RFC 7692 section 7.
        """
        seen: dict[str, str | None] = {}
        for name, value in params:
            if name not in _PARAMETERS:
                raise NegotiationError(f"permessage-deflate: unknown parameter {name!r}")
            if name in seen:
                raise NegotiationError(f"permessage-deflate: duplicate parameter {name!r}")
            seen[name] = value

        for name in ("server_no_context_takeover", "client_no_context_takeover"):
            if name in seen and seen[name] is not None:
                raise NegotiationError(f"permessage-deflate: {name} takes no value, got {seen[name]!r}")
        server_no_context_takeover = "server_no_context_takeover" in seen
        if self.server_no_context_takeover and not server_no_context_takeover:
            # RFC 7692 7.1.1.1: accepting the offer means echoing the parameter.
            raise NegotiationError(
                "permessage-deflate: server_no_context_takeover was offered but not accepted"
            )
        client_no_context_takeover = "client_no_context_takeover" in seen or self.client_no_context_takeover

        server_bits = 15
        if "server_max_window_bits" in seen:
            server_bits = _parse_bits("server_max_window_bits", seen["server_max_window_bits"])
            if self.server_max_window_bits is not None and server_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"permessage-deflate: server_max_window_bits={server_bits} is larger than "
                    f"the {self.server_max_window_bits} offered"
                )
        elif self.server_max_window_bits is not None:
            # RFC 7692 7.1.2.1: accepting the offer means answering with a value <= ours.
            raise NegotiationError("permessage-deflate: server_max_window_bits was offered but not accepted")

        offered_client_bits = self.client_max_window_bits
        # An offered value binds us even when the server does not answer with one.
        client_bits = 15 if offered_client_bits in (None, True) else int(offered_client_bits)
        if "client_max_window_bits" in seen:
            if offered_client_bits is None:
                # RFC 7692 7.1.2.2: not in the offer, so it must not be in the answer.
                raise NegotiationError("permessage-deflate: client_max_window_bits was not offered")
            answered = _parse_bits("client_max_window_bits", seen["client_max_window_bits"])
            if answered > client_bits:
                raise NegotiationError(
                    f"permessage-deflate: client_max_window_bits={answered} is larger than "
                    f"the {client_bits} offered"
                )
            client_bits = answered

        return PerMessageDeflate(
            server_no_context_takeover=server_no_context_takeover,
            client_no_context_takeover=client_no_context_takeover,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
            compress_level=self.compress_level,
            mem_level=self.mem_level,
            min_size=self.min_size,
        )


def _parse_bits(name: str, value: str | None) -> int:
    """A window-bits value of the server's answer (a value is required there)."""
    if value is None:
        raise NegotiationError(f"permessage-deflate: {name} needs a value in a response")
    if not _WINDOW_BITS_RE.match(value):
        raise NegotiationError(f"permessage-deflate: invalid {name} value {value!r}")
    return int(value)


class PerMessageDeflate:
    """The negotiated permessage-deflate of one connection (compressor and inflater).

    Not thread-safe: the protocol calls :meth:`compress` under its send lock and
    :meth:`decompress` from the reader only.
    """

    name: str = EXTENSION_NAME

    __slots__ = (
        "_compress_wbits",
        "_compressor",
        "_decompress_wbits",
        "_fallback_allowed",
        "_flush_mode",
        "_inflater",
        "_reset_inflater",
        "min_size",
        "params",
    )

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = 15,
        client_max_window_bits: int = 15,
        compress_level: int = -1,
        mem_level: int = 8,
        min_size: int = 64,
    ) -> None:
        #: What ``ws.extensions`` shows: the settings in force on this connection.
        self.params: dict[str, object] = {
            "server_no_context_takeover": server_no_context_takeover,
            "client_no_context_takeover": client_no_context_takeover,
            "server_max_window_bits": server_max_window_bits,
            "client_max_window_bits": client_max_window_bits,
        }
        #: Messages shorter than this are sent uncompressed.
        self.min_size = min_size
        self._compress_wbits = _zlib_window_bits(client_max_window_bits)
        self._decompress_wbits = _zlib_window_bits(server_max_window_bits)
        # Without context takeover a full flush ends each message: it empties the history as
        # a fresh compressor would, without paying for a new one per message.
        self._flush_mode = zlib.Z_FULL_FLUSH if client_no_context_takeover else zlib.Z_SYNC_FLUSH
        # Falling back to an uncompressed frame after compressing is only safe when the
        # compressor's history is discarded anyway (otherwise the peer's would diverge).
        self._fallback_allowed = client_no_context_takeover
        self._compressor = zlib.compressobj(compress_level, zlib.DEFLATED, self._compress_wbits, mem_level)
        self._inflater = zlib.decompressobj(self._decompress_wbits)
        self._reset_inflater = server_no_context_takeover

    def __repr__(self) -> str:
        return f"PerMessageDeflate({self.params!r})"

    # -- sending ---------------------------------------------------------------------------

    def compress(self, data: bytes) -> bytes | None:
        """Compress a whole message; ``None`` means "send it uncompressed".

        A message shorter than ``min_size`` is not compressed (and does not enter the
        compressor's history). Without client context takeover, a message whose compressed
        form is not smaller is also sent as it is.
        """
        if len(data) < self.min_size:
            return None
        compressor = self._compressor
        out = compressor.compress(data) + compressor.flush(self._flush_mode)
        # A sync or full flush always ends with the empty stored block 00 00 ff ff, which
        # RFC 7692 section 7.2.1 removes from the payload.
        payload = out[:-4]
        if self._fallback_allowed and len(payload) >= len(data):
            return None
        return payload

    # -- receiving -------------------------------------------------------------------------

    def decompress(self, data: bytes, fin: bool, max_size: int) -> bytes:
        """Inflate one frame's payload of a compressed message.

        ``fin`` marks the message's last frame. ``max_size`` is what is left of the
        message-size budget: output past it raises :class:`~wsclient.exceptions.PayloadTooBig`
        (close code 1009) before it is produced, so a small frame that would inflate to
        gigabytes costs at most ``max_size + 1`` bytes. A corrupt stream raises
        :class:`~wsclient.exceptions.ProtocolError` with close code 1007.
        """
        inflater = self._inflater
        limit = max_size + 1 if max_size >= 0 else 1  # 0 would mean "no limit" to zlib
        try:
            out = inflater.decompress(data, limit)
            if len(out) > max_size:
                raise PayloadTooBig(f"compressed message inflates past the {max_size}-byte limit left")
            if fin:
                more = inflater.decompress(_TAIL, limit - len(out))
                if more:
                    out += more
                    if len(out) > max_size:
                        raise PayloadTooBig(
                            f"compressed message inflates past the {max_size}-byte limit left"
                        )
        except zlib.error as err:
            raise ProtocolError(f"invalid permessage-deflate data: {err}", 1007) from err
        if inflater.eof:
            self._end_of_stream(fin)
        elif fin and self._reset_inflater:
            # The server starts every message with an empty window: so do we, so that a
            # reference into an earlier message is caught as the corruption it is.
            self._inflater = zlib.decompressobj(self._decompress_wbits)
        return out

    def _end_of_stream(self, fin: bool) -> None:
        """The peer ended its deflate stream with a BFINAL block (RFC 7692 section 7.2.3.4).

        Nothing but our own ``00 00 ff ff`` may follow it in the message; the next message
        starts a new stream, hence a new inflater.
        """
        unused = self._inflater.unused_data
        if unused != (_TAIL if fin else b""):
            raise ProtocolError("permessage-deflate data continues past the end of the deflate stream", 1007)
        if fin:
            self._inflater = zlib.decompressobj(self._decompress_wbits)


def resolve_compression(value: Any) -> DeflateOptions | None:
    """Turn the ``compression`` option into :class:`DeflateOptions`, or ``None`` for none.

    ``"deflate"`` gives the default options; ``None`` or ``False`` disables compression; a
    :class:`DeflateOptions` is used as it is. Anything else raises ``ValueError``.
    """
    if value is None or value is False:
        return None
    if isinstance(value, DeflateOptions):
        return value
    if isinstance(value, str) and value == "deflate":
        return DeflateOptions()
    raise ValueError(f"compression must be 'deflate', None or a DeflateOptions, not {value!r}")
