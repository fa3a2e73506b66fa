"""The one HTTP/1.1 response reader (Sans-I/O), as the handshake and the CONNECT tunnel use it."""

from __future__ import annotations

import random
import re

import pytest

from wsclient.http11 import (
    MAX_BODY_SIZE,
    MAX_HEAD_SIZE,
    Headers,
    HTTPParseError,
    ResponseReader,
    _head_end,
    parse_head,
)


def feed(reader: ResponseReader, data: bytes, step: int = 1) -> object:
    """Feed ``data`` a few bytes at a time (the reader must not care how it is split)."""
    result = None
    for start in range(0, len(data), step):
        result = reader.receive_data(data[start : start + step])
    return result


def test_parse_head() -> None:
    head = parse_head(
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b"Proxy-Authenticate: NTLM\r\n"
        b'proxy-authenticate: Basic realm="x"\r\n'
        b"X-Folded: a\r\n  b"
    )
    assert (head.status, head.reason, head.http_version) == (407, "Proxy Authentication Required", "HTTP/1.1")
    assert head.headers.get_all("Proxy-Authenticate") == ["NTLM", 'Basic realm="x"']
    assert head.headers["X-Folded"] == "a b"


def test_bare_lf_and_no_reason() -> None:
    head = parse_head(b"HTTP/1.0 200\nX: y")
    assert (head.status, head.reason, head.http_version) == (200, "", "HTTP/1.0")


@pytest.mark.parametrize(
    "head",
    [
        b"SSH-2.0-OpenSSH_9.2",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 OK",
        b"HTTP/2 200",
        b"\x16\x03\x01\x00\xa5",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nBad Name: x",
        b"HTTP/1.1 200 OK\r\n folded-first: x",
    ],
)
def test_garbage(head: bytes) -> None:
    with pytest.raises(HTTPParseError):
        parse_head(head)


@pytest.mark.parametrize("step", [1, 7, 100000])
def test_content_length_body_and_trailing_bytes(step: int) -> None:
    reader = ResponseReader()
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!NEXT"
    response = feed(reader, data, step)
    assert response is not None and reader.response is not None
    assert reader.response.body == b"nope!" and reader.trailing_data == b"NEXT" and reader.reusable


@pytest.mark.parametrize("step", [1, 3, 100000])
def test_chunked_body_with_extensions_and_trailers(step: int) -> None:
    reader = ResponseReader()
    data = b"HTTP/1.1 502 Bad\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n"
    assert feed(reader, data, step) is not None
    assert reader.response is not None and reader.response.body == b"hello world" and reader.reusable


def test_close_delimited_body_ends_at_eof() -> None:
    reader = ResponseReader()
    assert reader.receive_data(b"HTTP/1.0 503 Busy\r\n\r\nno ro") is None
    assert reader.receive_data(b"ute") is None
    response = reader.receive_eof()
    assert response.body == b"no route" and response.http_version == "HTTP/1.0" and not reader.reusable


def test_keep_alive_without_length_has_no_body_and_is_not_reusable() -> None:
    reader = ResponseReader()
    response = reader.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n")
    assert response is not None and response.body == b"" and not reader.reusable


def test_connection_close_is_not_reusable() -> None:
    reader = ResponseReader()
    assert reader.receive_data(b"HTTP/1.1 407 P\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") is not None
    assert not reader.reusable


def test_no_body_statuses_keep_what_follows() -> None:
    reader = ResponseReader(no_body=lambda status: 200 <= status < 300, skip_interim=True)
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\nContent-Length: 9\r\n\r\nEARLY"
    response = reader.receive_data(data)
    assert response is not None and response.status == 200 and reader.trailing_data == b"EARLY"
    assert reader.receive_data(b"MORE") is response and reader.trailing_data == b"EARLYMORE"


def test_interim_answers_are_final_unless_skipped() -> None:
    reader = ResponseReader()
    response = reader.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert response is not None and response.status == 100


def test_head_is_bounded() -> None:
    reader = ResponseReader()
    reader.receive_data(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(HTTPParseError, match="larger than"):
        for _ in range(MAX_HEAD_SIZE // 100 + 2):
            reader.receive_data(b"X-Filler: " + b"y" * 100 + b"\r\n")


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 500 E\r\nContent-Length: 200000\r\n\r\n",
        b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n30000\r\n",
        b"HTTP/1.1 500 E\r\nConnection: close\r\n\r\n",
    ],
)
@pytest.mark.parametrize("limit", [MAX_BODY_SIZE, 100_000])
def test_body_is_bounded(head: bytes, limit: int) -> None:
    reader = ResponseReader() if limit == MAX_BODY_SIZE else ResponseReader(max_body=limit)
    response = None
    for _ in range(10):
        response = reader.receive_data((head if response is None and not reader.has_head else b"") + b"z" * 40000)
        if response is not None:
            break
    assert response is not None and len(response.body) == limit and not reader.reusable


@pytest.mark.parametrize("lengths", [b"Content-Length: x1\r\n", b"Content-Length: 1\r\nContent-Length: 2\r\n"])
def test_bad_content_length(lengths: bytes) -> None:
    with pytest.raises(HTTPParseError, match="Content-Length"):
        ResponseReader().receive_data(b"HTTP/1.1 500 E\r\n" + lengths + b"\r\n")


def test_malformed_chunk_keeps_what_was_decoded() -> None:
    reader = ResponseReader()
    response = reader.receive_data(b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")
    assert response is not None and response.body == b"ok" and not reader.reusable


def test_eof_before_any_answer() -> None:
    with pytest.raises(HTTPParseError, match="without answering"):
        ResponseReader().receive_eof()
    reader = ResponseReader()
    reader.receive_data(b"HTTP/1.1 200 Conn")
    with pytest.raises(HTTPParseError, match="in the middle"):
        reader.receive_eof()


def test_head_end_is_the_first_blank_line_of_any_line_ending() -> None:
    """The find()-based search agrees with ``\\r?\\n\\r?\\n`` on every mix of line ends."""
    pattern = re.compile(rb"\r?\n\r?\n")
    rng = random.Random(6455)
    for _ in range(20000):
        buf = bytes(rng.choice(b"\r\nab") for _ in range(rng.randint(0, 14)))
        match = pattern.search(buf)
        expected = None if match is None else (match.start(), match.end())
        assert _head_end(buf) == expected == _head_end(bytearray(buf)), buf


def test_the_search_resumes_where_the_last_read_left_off() -> None:
    """A head that arrives in small reads is searched from two bytes before the end of what
    was searched before: the answer is the one a search of the whole buffer gives."""
    rng = random.Random(7230)
    for _ in range(5000):
        buf = bytes(rng.choice(b"\r\nab") for _ in range(rng.randint(0, 14)))
        seen, scanned = 0, 0
        while True:
            seen = min(len(buf), seen + rng.randint(1, 3))
            found = _head_end(buf[:seen], scanned)
            if found is not None or seen == len(buf):
                break
            scanned = max(0, seen - 2)
        assert found == _head_end(buf[:seen]), buf


@pytest.mark.parametrize("step", [1, 2, 5])
def test_trickled_interim_and_final_heads(step: int) -> None:
    """A CONNECT answer one byte at a time, behind a 100 Continue: the search restarts for
    the second head and finds its bare-LF blank line."""
    reader = ResponseReader(skip_interim=True, no_body=lambda status: 200 <= status < 300)
    data = b"HTTP/1.1 100 Continue\r\nX: 1\r\n\r\nHTTP/1.1 200 Connection established\nVia: p\n\n\x16\x03"
    response = feed(reader, data, step)
    assert response is not None and response.status == 200 and response.headers["Via"] == "p"
    assert reader.trailing_data == b"\x16\x03"


def test_mixed_line_ends_split_like_the_grammar() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\nC: 3")
    assert head.headers.raw_items() == [("A", "1"), ("B", "2"), ("C", "3")]


def test_header_lookups_follow_changes() -> None:
    headers = Headers([("Upgrade", "websocket"), ("X-A", "1")])
    assert headers.get_all("upgrade") == ["websocket"] and "x-a" in headers and len(headers) == 2
    headers.add("x-a", "2")
    assert headers.get_all("X-A") == ["1", "2"] and headers["x-A"] == "1, 2"
    headers["X-A"] = "3"
    assert headers.get_all("x-a") == ["3"]
    del headers["UPGRADE"]
    assert "Upgrade" not in headers and headers.get("upgrade") is None and len(headers) == 1
    values = headers.get_all("x-a")
    values.append("not stored")
    assert headers.get_all("x-a") == ["3"]
