from __future__ import annotations

import pytest

from wsclient import DeflateOptions, HandshakeError, InvalidStatus
from wsclient.handshake import ClientHandshake, Headers, accept_key
from wsclient.uri import parse_uri


def make(**kw) -> ClientHandshake:
    return ClientHandshake(parse_uri(kw.pop("url", "ws://example.com:9000/chat?x=1")), **kw)


def ok_response(hs: ClientHandshake, extra: str = "", accept: str | None = None) -> bytes:
    accept = accept if accept is not None else accept_key(hs.key)
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    ).encode()


def test_rfc_example_accept() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_request() -> None:
    hs = make(subprotocols=["v2.feed", "v1"], headers={"Authorization": "Bearer t"}, origin="https://o")
    req = hs.request_bytes().decode()
    lines = req.split("\r\n")
    assert lines[0] == "GET /chat?x=1 HTTP/1.1"
    assert "Host: example.com:9000" in lines
    assert "Upgrade: websocket" in lines and "Connection: Upgrade" in lines
    assert "Sec-WebSocket-Version: 13" in lines
    assert "Sec-WebSocket-Protocol: v2.feed, v1" in lines
    assert "Authorization: Bearer t" in lines and "Origin: https://o" in lines
    assert req.endswith("\r\n\r\n")
    assert len(__import__("base64").b64decode(hs.key)) == 16
    assert make().key != make().key


def test_no_origin_unless_given_and_version_8() -> None:
    assert b"Origin" not in make().request_bytes()
    req = make(version=8, origin="http://o").request_bytes()
    assert b"Sec-WebSocket-Origin: http://o" in req and b"Sec-WebSocket-Version: 8" in req


@pytest.mark.parametrize("headers", [{"X": "a\r\nInjected: 1"}, {"X": "a\nb"}, {"Bad Name": "x"}])
def test_header_injection_is_refused(headers: dict) -> None:
    with pytest.raises(ValueError):
        make(headers=headers)


def test_origin_with_crlf_is_refused() -> None:
    with pytest.raises(ValueError):
        make(origin="http://o\r\nX: y")


def test_response_with_trailing_frame() -> None:
    hs = make()
    data = ok_response(hs) + b"\x81\x02hi"
    assert hs.receive_data(data[:10]) is None
    resp = hs.receive_data(data[10:])
    assert resp is not None and resp.status == 101
    assert hs.trailing_data == b"\x81\x02hi"
    assert hs.validate() == (None, None)
    assert resp.headers["upgrade"] == "websocket"


def test_wrong_accept() -> None:
    hs = make()
    hs.receive_data(ok_response(hs, accept=accept_key("other")))
    with pytest.raises(HandshakeError, match="Accept"):
        hs.validate()


def test_connection_and_upgrade_are_token_lists() -> None:
    hs = make()
    data = ok_response(hs).replace(b"Connection: Upgrade", b"Connection: keep-alive, UPGRADE")
    hs.receive_data(data.replace(b"Upgrade: websocket", b"Upgrade: WebSocket"))
    hs.validate()


def test_missing_upgrade() -> None:
    hs = make()
    hs.receive_data(ok_response(hs).replace(b"Upgrade: websocket\r\n", b""))
    with pytest.raises(HandshakeError):
        hs.validate()


def test_subprotocol_rules() -> None:
    hs = make(subprotocols=["a", "b"])
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Protocol: b\r\n"))
    assert hs.validate()[0] == "b"
    hs = make(subprotocols=["a"])
    hs.receive_data(ok_response(hs))
    assert hs.validate()[0] is None  # absence is allowed
    hs = make(subprotocols=["a"])
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Protocol: c\r\n"))
    with pytest.raises(HandshakeError, match="not offered"):
        hs.validate()


def test_unrequested_extension() -> None:
    hs = make()
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Extensions: x-foo\r\n"))
    with pytest.raises(HandshakeError):
        hs.validate()
    hs = make(deflate=None)
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    with pytest.raises(HandshakeError):
        hs.validate()


def test_deflate_negotiated() -> None:
    hs = make(deflate=DeflateOptions())
    assert b"Sec-WebSocket-Extensions: permessage-deflate" in hs.request_bytes()
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"))
    _, deflate = hs.validate()
    assert deflate is not None and deflate.name == "permessage-deflate"


def test_non_101_with_body() -> None:
    hs = make()
    assert hs.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nno") is None
    resp = hs.receive_data(b"pe!")
    assert resp is not None and (resp.status, resp.reason, resp.body) == (403, "Forbidden", b"nope!")
    with pytest.raises(InvalidStatus) as info:
        hs.validate()
    assert info.value.response.status == 403


def test_head_size_is_bounded() -> None:
    hs = make()
    with pytest.raises(HandshakeError, match="larger"):
        hs.receive_data(b"HTTP/1.1 101 OK\r\n" + b"X: " + b"y" * 70000)


@pytest.mark.parametrize("head", [b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 101 OK\r\nno colon\r\n\r\n"])
def test_malformed_heads(head: bytes) -> None:
    with pytest.raises(HandshakeError):
        make().receive_data(head)


def test_eof_before_answer() -> None:
    with pytest.raises(HandshakeError):
        make().receive_eof()


def test_headers_mapping() -> None:
    h = Headers([("Set-Cookie", "a"), ("set-cookie", "b"), ("X", "1")])
    assert h["SET-COOKIE"] == "a, b" and h.get_all("set-cookie") == ["a", "b"]
    assert len(h) == 2 and "x" in h and list(h) == ["Set-Cookie", "X"]


def test_duplicate_deflate_in_the_response() -> None:
    hs = make(deflate=DeflateOptions())
    hs.receive_data(ok_response(hs, "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n"))
    with pytest.raises(HandshakeError, match="more than once"):
        hs.validate()


def test_chunked_body_of_a_non_101() -> None:
    hs = make()
    head = b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nWWW-Authenticate: Bearer\r\n\r\n"
    assert hs.receive_data(head + b"5\r\nhel") is None
    resp = hs.receive_data(b"lo\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    assert resp is not None and resp.status == 401 and resp.body == b"hello world"
    assert resp.headers["www-authenticate"] == "Bearer"


def test_keep_alive_non_101_without_length_ends_at_the_head() -> None:
    hs = make()
    resp = hs.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n")
    assert resp is not None and resp.status == 404 and resp.body == b""


def test_short_body_is_reported_at_eof_or_timeout() -> None:
    hs = make()
    assert hs.receive_data(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\npartial") is None
    assert hs.has_head
    resp = hs.receive_eof()
    assert resp.status == 500 and resp.body == b"partial"


def test_body_until_close_for_connection_close() -> None:
    hs = make()
    assert hs.receive_data(b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nsome") is None
    assert hs.receive_eof().body == b"some"


def test_reserved_headers_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="set by the handshake"):
        make(headers={"Sec-WebSocket-Key": "abc"})
