"""The Sans-I/O opening handshake of the client (RFC 6455 section 4.1).

:class:`ClientHandshake` builds the request bytes, parses the response head incrementally
(bounded), and validates it. Bytes that arrive after the head are kept in ``trailing_data``
so the connection can feed them to the protocol as the first frames.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import HandshakeError, InvalidStatus
from .http11 import MAX_BODY_SIZE, MAX_HEAD_SIZE, Headers, HTTPParseError, Response, ResponseReader

if TYPE_CHECKING:
    from .extensions.permessage_deflate import DeflateOptions, PerMessageDeflate
    from .uri import WSURI

__all__ = ["ClientHandshake", "Headers", "Response", "accept_key", "parse_extension_header"]

__all__ += ["MAX_BODY_SIZE", "MAX_HEAD_SIZE"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_RESERVED = frozenset({"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"})
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value the server must send for ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def parse_extension_header(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse ``Sec-WebSocket-Extensions`` values into ``[(name, [(param, value|None)])]``.

    Raises ``HandshakeError`` on syntax errors.
    """
    result: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        for item in _split_commas(value):
            parts = [p.strip() for p in item.split(";")]
            name = parts[0]
            if not _TOKEN_RE.match(name):
                raise HandshakeError(f"malformed Sec-WebSocket-Extensions header: {value!r}")
            params: list[tuple[str, str | None]] = []
            for p in parts[1:]:
                if "=" in p:
                    k, v = (s.strip() for s in p.split("=", 1))
                    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                        v = v[1:-1]
                    if not _TOKEN_RE.match(k) or not _TOKEN_RE.match(v):
                        raise HandshakeError(f"malformed extension parameter {p!r}")
                    params.append((k, v))
                else:
                    if not _TOKEN_RE.match(p):
                        raise HandshakeError(f"malformed extension parameter {p!r}")
                    params.append((p, None))
            result.append((name, params))
    return result


def _split_commas(value: str) -> list[str]:
    items = []
    for item in value.split(","):
        item = item.strip()
        if item:
            items.append(item)
    return items


# Field values may hold visible characters, spaces and tabs (RFC 9110 section 5.5): any
# other control character could split the request or smuggle a header past a gateway.
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_header(name: object, value: object, *, what: str = "header") -> None:
    """Raise ``ValueError`` unless ``name: value`` is a valid HTTP field that can be sent.

    The request head is encoded as ISO-8859-1, so a value outside it cannot be sent either.
    The message never repeats the value: it may be a credential (``Authorization``).
    """
    if not isinstance(name, str):
        raise ValueError(f"{what} names must be str, not {type(name).__name__}")
    if not _TOKEN_RE.match(name):
        raise ValueError(f"invalid {what} name {name[:100]!r}: it must be an HTTP token")
    if not isinstance(value, str):
        raise ValueError(f"the value of the {what} {name!r} must be str, not {type(value).__name__}")
    if _BAD_VALUE_RE.search(value):
        raise ValueError(f"the value of the {what} {name!r} contains a control character (CR, LF, ...)")
    # max() instead of encode(): a UnicodeEncodeError would keep the value in its args
    # (and as the ValueError's __context__).
    if value and max(value) > "\xff":
        raise ValueError(
            f"the value of the {what} {name!r} cannot be sent: HTTP header values are "
            "ISO-8859-1 (encode other text, e.g. percent-encoding or base64)"
        )


def header_pairs(headers: object, *, what: str = "header", allow_bytes: bool = False) -> list[tuple[str, str]]:
    """Validate ``headers`` (a mapping or an iterable of pairs) into a list of pairs.

    With ``allow_bytes``, bytes values are taken as ISO-8859-1 (``proxy_headers`` accepts them).

    Raises:
        ValueError: not a mapping or pairs, or a field that :func:`check_header` refuses.
    """
    if headers is None:
        return []
    if isinstance(headers, (str, bytes)):
        raise ValueError(f"{what}s must be a mapping or (name, value) pairs, not {type(headers).__name__}")
    source: Any = headers.items() if isinstance(headers, Mapping) else headers
    try:
        items = list(source)
    except TypeError:
        raise ValueError(f"{what}s must be a mapping or (name, value) pairs") from None
    result: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{what}s must be a mapping or (name, value) pairs")
        name, value = item
        if allow_bytes and isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        check_header(name, value, what=what)
        result.append((name, value))
    return result


@dataclass
class ClientHandshake:
    """The opening handshake of one connection attempt.

    Call :meth:`request_bytes`, write them, then feed what the socket returns to
    :meth:`receive_data` until it returns a :class:`Response`; then :meth:`validate` it.
    """

    uri: WSURI
    subprotocols: list[str] | None = None
    # repr=False: the headers may carry credentials (Authorization, Cookie).
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = field(default=None, repr=False)
    origin: str | None = None
    version: int = 13
    deflate: DeflateOptions | None = None
    #: The ``User-Agent`` sent unless ``headers`` holds one; None: no User-Agent.
    user_agent: str | None = None
    key: str = field(default_factory=lambda: base64.b64encode(os.urandom(16)).decode("ascii"))

    response: Response | None = field(default=None, init=False)
    trailing_data: bytes = field(default=b"", init=False)
    _reader: ResponseReader = field(
        default_factory=lambda: ResponseReader(no_body=lambda status: status == 101), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.subprotocols is not None:
            if isinstance(self.subprotocols, str):
                self.subprotocols = [self.subprotocols]
            for p in self.subprotocols:
                if not isinstance(p, str) or not _TOKEN_RE.match(p):
                    raise ValueError(f"invalid subprotocol {p!r}: must be an HTTP token")
        if self.origin is not None:
            check_header("Origin", self.origin, what="origin")
        self.headers = header_pairs(self.headers)
        if self.user_agent is not None:
            check_header("User-Agent", self.user_agent, what="user_agent")
        for k, _ in self.headers:
            if k.lower() in _RESERVED:
                raise ValueError(f"header {k!r} is set by the handshake and cannot be given")

    def request_bytes(self) -> bytes:
        """The HTTP request head."""
        uri = self.uri
        user: list[tuple[str, str]] = list(self.headers or ())  # type: ignore[arg-type]
        given = {k.lower() for k, _ in user}
        lines = [f"GET {uri.resource} HTTP/1.1"]
        if "host" not in given:
            lines.append(f"Host: {uri.host_header}")
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            f"Sec-WebSocket-Version: {self.version}",
        ]
        if self.origin is not None:
            name = "Origin" if self.version == 13 else "Sec-WebSocket-Origin"
            lines.append(f"{name}: {self.origin}")
        if self.subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(self.subprotocols)}")
        if self.deflate is not None:
            lines.append(f"Sec-WebSocket-Extensions: {self.deflate.offer()}")
        if uri.user_info is not None and "authorization" not in given:
            cred = f"{uri.user_info[0]}:{uri.user_info[1]}".encode()
            lines.append("Authorization: Basic " + base64.b64encode(cred).decode("ascii"))
        if self.user_agent is not None and "user-agent" not in given:
            lines.append(f"User-Agent: {self.user_agent}")
        for k, v in user:
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def receive_data(self, data: bytes) -> Response | None:
        """Feed response bytes; returns the response once its head (and, for a non-101,
        its bounded body) is complete. Raises ``HandshakeError`` on a malformed head."""
        try:
            return self._done(self._reader.receive_data(data))
        except HTTPParseError as exc:
            raise HandshakeError(f"the server's answer is not HTTP: {exc}") from exc

    @property
    def has_head(self) -> bool:
        """Whether the response head has arrived (its body may still be incomplete)."""
        return self._reader.has_head

    def receive_eof(self) -> Response:
        """The server closed the connection (or stopped answering within the timeout):
        returns what was received, or raises when not even a response head arrived."""
        try:
            response = self._done(self._reader.receive_eof())
        except HTTPParseError as exc:
            raise HandshakeError(str(exc).replace("the peer", "the server")) from exc
        assert response is not None
        return response

    def _done(self, response: Response | None) -> Response | None:
        if response is not None:
            self.response = response
            self.trailing_data = self._reader.trailing_data if response.status == 101 else b""
        return response

    def validate(self) -> tuple[str | None, PerMessageDeflate | None]:
        """Check the 101 response; returns (subprotocol, negotiated deflate codec or None).

        Raises:
            InvalidStatus: the status is not 101.
            HandshakeError: a header is missing or wrong.
        """
        response = self.response
        assert response is not None
        if response.status != 101:
            raise InvalidStatus(None, response)  # the message says status, reason, Location
        h = response.headers
        if "websocket" not in h.tokens("Upgrade"):
            raise HandshakeError(f"the response has no 'Upgrade: websocket' header (got {h.get('Upgrade')!r})")
        if "upgrade" not in h.tokens("Connection"):
            raise HandshakeError(f"the response has no 'Connection: Upgrade' header (got {h.get('Connection')!r})")
        accepts = h.get_all("Sec-WebSocket-Accept")
        if len(accepts) != 1:
            raise HandshakeError("the response must carry exactly one Sec-WebSocket-Accept header")
        if accepts[0].strip() != accept_key(self.key):
            raise HandshakeError("the Sec-WebSocket-Accept value does not match the key sent")
        subprotocol = None
        protocols = h.tokens("Sec-WebSocket-Protocol")
        raw_protocols = [t.strip() for v in h.get_all("Sec-WebSocket-Protocol") for t in v.split(",") if t.strip()]
        if protocols:
            if len(raw_protocols) != 1:
                raise HandshakeError(f"the server chose several subprotocols: {raw_protocols}")
            if raw_protocols[0] not in (self.subprotocols or []):
                raise HandshakeError(f"the server chose subprotocol {raw_protocols[0]!r}, which was not offered")
            subprotocol = raw_protocols[0]
        deflate = None
        extensions = parse_extension_header(h.get_all("Sec-WebSocket-Extensions"))
        for name, params in extensions:
            if name.lower() == "permessage-deflate" and self.deflate is not None:
                if deflate is not None:
                    raise HandshakeError("the response names permessage-deflate more than once")
                deflate = self.deflate.accept(params)
            else:
                raise HandshakeError(f"the server accepted extension {name!r}, which was not offered")
        return subprotocol, deflate
