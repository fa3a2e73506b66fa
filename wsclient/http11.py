"""The one HTTP/1.1 response reader: Sans-I/O, bounded, used by the opening handshake and
by the CONNECT tunnel alike.

Feed it bytes with :meth:`ResponseReader.receive_data` and tell it about the end of the
stream with :meth:`ResponseReader.receive_eof`; it parses the status line and the headers
(at most :data:`MAX_HEAD_SIZE` bytes), then the body by ``Content-Length``, by chunks, or
until the peer closes (at most :data:`MAX_BODY_SIZE` bytes kept unless asked for more).
Bytes past the message (the first WebSocket frames after a 101, the tunnelled stream after
a 200) stay in :attr:`ResponseReader.trailing_data`. It raises :class:`HTTPParseError`; each caller maps it
to its own exception (``HandshakeError``, ``ProxyError``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

__all__ = ["MAX_BODY_SIZE", "MAX_HEAD_SIZE", "HTTPParseError", "Headers", "Response", "ResponseReader"]

#: Largest response head (status line and headers) accepted.
MAX_HEAD_SIZE = 64 * 1024
#: Largest body kept; the rest of a longer body is neither read nor kept.
MAX_BODY_SIZE = 64 * 1024
# A chunk-size line longer than this is not a chunk-size line.
_MAX_LINE = 4096

_STATUS_LINE = re.compile(r"HTTP/1\.(\d) (\d{3})(?: (.*))?", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_END = re.compile(r"\r?\n")


class HTTPParseError(ValueError):
    """The peer's answer is not HTTP/1.x, or breaks a bound."""


class Headers(MutableMapping[str, str]):
    """A case-insensitive multi-map of HTTP headers.

    ``headers[name]`` gives the values of a repeated header joined with ``", "``;
    :meth:`get_all` gives them as a list. Iteration yields each name once (as first seen).
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        pairs = () if items is None else items.items() if isinstance(items, Mapping) else items
        self._items: list[tuple[str, str]] = [(k, v) for k, v in pairs]
        # Lower-cased name -> its values, built on the first lookup and dropped by every
        # change: a handshake looks up about eight names in a head of three or four.
        self._index: dict[str, list[str]] | None = None

    def add(self, name: str, value: str) -> None:
        """Append one ``name: value`` (a repeated name keeps every value)."""
        self._items.append((name, value))
        self._index = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for k, v in self._items:
                index.setdefault(k.lower(), []).append(v)
            self._index = index
        return index

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._lookup().get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """The comma-separated, lower-cased tokens of every ``name`` value."""
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        if name in self:
            del self[name]
        self._items.append((name, value))
        self._index = None

    def __delitem__(self, name: str) -> None:
        low = name.lower()
        before = len(self._items)
        self._items = [(k, v) for k, v in self._items if k.lower() != low]
        self._index = None
        if len(self._items) == before:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for k, _ in self._items:
            if k.lower() not in seen:
                seen.add(k.lower())
                yield k

    def __len__(self) -> int:
        return len(self._lookup())

    def raw_items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in order, repeated names included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class Response:
    """An HTTP response: the server's answer to the opening handshake, or a proxy's answer
    to CONNECT (``ProxyError.response``). ``body`` holds at most 64 KiB (``MAX_BODY_SIZE``)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    http_version: str = "HTTP/1.1"

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.reason}]>"


def _head_end(buf: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Where the first blank line (``\\r?\\n\\r?\\n``) that ends a head starts and ends,
    looking from ``start`` on (the bytes before it were searched already).

    Two ``find()`` calls instead of a regular expression: a pattern that may begin with
    either of two bytes is tried at every offset, which cost about 6 % of a connect +
    close in instructions (callgrind).
    """
    first, size = -1, 0
    for pattern in (b"\n\n", b"\n\r\n"):
        at = buf.find(pattern, start)
        if at >= 0 and (first < 0 or at < first):
            first, size = at, len(pattern)
    if first < 0:
        return None
    start = first - 1 if first > 0 and buf[first - 1] == 13 else first  # 13: CR
    return start, first + size


def parse_head(head: bytes) -> Response:
    """Parse a response head (without the blank line that ends it); bare LF line ends and
    obsolete line folding are accepted (RFC 9112 section 5.2 lets a client unfold)."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:  # a bare LF somewhere
        lines = _LINE_END.split(text)
    status_line = lines[0]
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise HTTPParseError(f"malformed status line: {status_line[:80]!r}")
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not pairs:
                raise HTTPParseError(f"malformed header line: {line[:80]!r}")
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HTTPParseError(f"malformed header line: {line[:80]!r}")
        pairs.append((name, value.strip(" \t")))
    reason = (match.group(3) or "").strip()
    return Response(int(match.group(2)), reason, Headers(pairs), b"", f"HTTP/1.{match.group(1)}")


class ResponseReader:
    """Reads one HTTP/1.1 response from the bytes it is fed.

    Args:
        no_body: statuses whose response has no body besides 1xx, 204 and 304 (the 101
            of the handshake, the 2xx answer to CONNECT: what follows is another protocol).
        skip_interim: skip 1xx answers (other than those ``no_body`` names) and read the
            next response, as a CONNECT client must.
        max_body: how many bytes of the body are kept (and read) at most.

    After :meth:`receive_data` or :meth:`receive_eof` returned the response: ``trailing_data``
    holds the bytes past it and ``reusable`` says whether the connection can carry another
    request (the body was framed and read whole, and neither side asked to close).
    """

    def __init__(
        self,
        *,
        no_body: Callable[[int], bool] = lambda status: False,
        skip_interim: bool = False,
        max_body: int = MAX_BODY_SIZE,
    ) -> None:
        self._no_body = no_body
        self._max_body = max_body
        self._skip_interim = skip_interim
        self._buf = bytearray()
        self._scanned = 0  # where the search for the head's end resumes in _buf
        self._body = bytearray()
        self._mode = ""  # "", "length", "chunked", "eof"
        self._left = 0  # bytes left: of the body ("length") or of the current chunk
        self._in_trailers = False
        self._need_crlf = False
        self._keep_alive = False
        self._framed = True
        self.head: Response | None = None
        self.response: Response | None = None
        self.trailing_data = b""
        self.reusable = False

    def receive_data(self, data: bytes) -> Response | None:
        """Feed bytes; returns the response once it is complete, else None.

        Raises:
            HTTPParseError: malformed, or a head over :data:`MAX_HEAD_SIZE` bytes.
        """
        if self.response is not None:
            self.trailing_data += data
            return self.response
        self._buf += data
        while self.head is None:
            found = _head_end(self._buf, self._scanned)
            if found is None or found[0] > MAX_HEAD_SIZE:
                if len(self._buf) > MAX_HEAD_SIZE:
                    raise HTTPParseError(f"the response head is larger than {MAX_HEAD_SIZE} bytes")
                # A head trickled in small reads is searched once, not again per read:
                # the blank line can only begin in the last two bytes seen so far.
                self._scanned = max(0, len(self._buf) - 2)
                return None
            head = parse_head(bytes(self._buf[: found[0]]))
            del self._buf[: found[1]]
            self._scanned = 0
            if self._skip_interim and 100 <= head.status < 200 and not self._no_body(head.status):
                continue
            self._start_body(head)
        return self._progress()

    def receive_eof(self) -> Response:
        """The stream ended (or the caller stopped waiting): the response with the body
        received so far.

        Raises:
            HTTPParseError: not even a response head arrived.
        """
        if self.response is not None:
            return self.response
        if self.head is None:
            if self._buf.strip():
                raise HTTPParseError("the peer closed the connection in the middle of its answer")
            raise HTTPParseError("the peer closed the connection without answering")
        if self._mode == "length":
            self._body += self._buf[: self._left]
        elif self._mode == "eof":
            self._body += self._buf
        self._buf.clear()
        self._framed = False
        return self._finish()

    @property
    def has_head(self) -> bool:
        """Whether the response head has arrived (its body may still be incomplete)."""
        return self.head is not None

    def _start_body(self, head: Response) -> None:
        self.head = head
        headers = head.headers
        tokens = set(headers.tokens("Connection")) | set(headers.tokens("Proxy-Connection"))
        self._keep_alive = "keep-alive" in tokens if head.http_version == "HTTP/1.0" else "close" not in tokens
        status = head.status
        if 100 <= status < 200 or status in (204, 304) or self._no_body(status):
            self._mode = ""
            return
        transfer = headers.tokens("Transfer-Encoding")
        if transfer:
            self._mode = "chunked" if transfer[-1] == "chunked" else "eof"
            return
        lengths = {value.strip() for value in headers.get_all("Content-Length")}
        if lengths:
            value = next(iter(lengths))
            if len(lengths) != 1 or not value.isdigit():
                raise HTTPParseError(f"invalid Content-Length: {', '.join(sorted(lengths))[:80]!r}")
            self._mode, self._left = "length", int(value)
        elif head.http_version == "HTTP/1.0" or not self._keep_alive:
            self._mode = "eof"
        else:
            # Kept open with no length: nothing more can be read as its body, and the
            # connection cannot be trusted with another request.
            self._mode, self._framed = "", False

    def _progress(self) -> Response | None:
        buf = self._buf
        if self._mode == "length":
            take = min(self._left, len(buf))
            self._body += buf[:take]
            del buf[:take]
            self._left -= take
            if self._left and len(self._body) < self._max_body:
                return None
            self._framed = self._left == 0
        elif self._mode == "eof":
            if len(buf) < self._max_body:
                return None
            self._body += buf
            buf.clear()
            self._framed = False
        elif self._mode == "chunked" and not self._dechunk():
            return None
        return self._finish()

    def _dechunk(self) -> bool:
        """Decode the chunks in the buffer; True once the body ended (or broke a bound)."""
        buf = self._buf
        while True:
            if self._left:
                take = min(self._left, len(buf))
                self._body += buf[:take]
                del buf[:take]
                self._left -= take
                if self._left:
                    return self._give_up() if len(self._body) >= self._max_body else False
                self._need_crlf = True  # the CRLF after the chunk's data
            eol = buf.find(b"\n")
            if eol < 0:
                return self._give_up() if len(buf) > _MAX_LINE else False
            line = bytes(buf[:eol]).strip()
            del buf[: eol + 1]
            if self._need_crlf:
                self._need_crlf = False
                if line:
                    return self._give_up()
                continue
            if self._in_trailers:
                if not line:
                    return True
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return self._give_up()
            if size == 0:
                self._in_trailers = True
            else:
                self._left = size

    def _give_up(self) -> bool:
        """A malformed or oversized chunked body: keep what was decoded, stop reading."""
        self._framed = False
        return True

    def _finish(self) -> Response:
        head = self.head
        assert head is not None
        self.response = Response(head.status, head.reason, head.headers, bytes(self._body[:self._max_body]), head.http_version)
        self.reusable = self._framed and self._keep_alive and self._mode != "eof"
        self.trailing_data = bytes(self._buf) if self._framed else b""
        self._buf.clear()
        return self.response
