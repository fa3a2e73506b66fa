"""The CONNECT request and the parsing of a proxy's answer head (no sockets)."""

from __future__ import annotations

import pytest

from wsclient.exceptions import ProxyError
from wsclient.proxy.tunnel import (
    ProxyResponse,
    _header_items,
    build_connect_request,
    connect_authority,
    parse_response_head,
)


def test_connect_authority() -> None:
    assert connect_authority("example.com", 443) == "example.com:443"
    assert connect_authority("::1", 8080) == "[::1]:8080"
    assert connect_authority("[::1]", 8080) == "[::1]:8080"
    assert connect_authority("10.0.0.1", 80) == "10.0.0.1:80"


def test_build_connect_request() -> None:
    request = build_connect_request("[::1]:9000")
    assert request == (
        b"CONNECT [::1]:9000 HTTP/1.1\r\nHost: [::1]:9000\r\nProxy-Connection: keep-alive\r\n\r\n"
    )


def test_build_connect_request_with_headers_and_auth() -> None:
    extra = [("User-Agent", "corp-agent/1"), ("Proxy-Authorization", "Bearer mine")]
    request = build_connect_request("h:1", extra, "Basic abc")
    lines = request.decode().split("\r\n")
    assert lines[0] == "CONNECT h:1 HTTP/1.1"
    assert "User-Agent: corp-agent/1" in lines
    assert "Proxy-Authorization: Basic abc" in lines
    assert "Proxy-Authorization: Bearer mine" not in lines
    assert request.endswith(b"\r\n\r\n")
    # Without a computed value, the user's own Proxy-Authorization is sent.
    assert b"Proxy-Authorization: Bearer mine" in build_connect_request("h:1", extra)


def test_user_host_header_replaces_ours() -> None:
    request = build_connect_request("h:1", [("Host", "other:1")]).decode()
    assert request.count("Host:") == 1 and "Host: other:1" in request


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: 1"},
        {"X-Evil": "a\nb"},
        {"Bad Name": "x"},
        {"": "x"},
        {"X": 1},
    ],
)
def test_header_injection_refused(headers: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _header_items(headers)


def test_header_items_forms() -> None:
    assert _header_items(None) == []
    assert _header_items({"A": "1"}) == [("A", "1")]
    assert _header_items([("A", "1"), ("A", "2")]) == [("A", "1"), ("A", "2")]
    assert _header_items({"A": b"v"}) == [("A", "v")]


def test_parse_head() -> None:
    head = parse_response_head(
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b"Proxy-Authenticate: NTLM\r\n"
        b'proxy-authenticate: Basic realm="x"\r\n'
        b"Content-Length: 12\r\n"
        b"X-Folded: a\r\n  b"
    )
    assert head.status == 407 and head.reason == "Proxy Authentication Required"
    assert head.version == (1, 1)
    assert head.headers.get_all("Proxy-Authenticate") == ["NTLM", 'Basic realm="x"']
    assert head.headers["content-length"] == "12"
    assert head.headers["X-Folded"] == "a b"


def test_parse_head_bare_lf_and_no_reason() -> None:
    head = parse_response_head(b"HTTP/1.0 200\nX: y")
    assert head.status == 200 and head.reason == "" and head.version == (1, 0)


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
def test_parse_head_garbage(head: bytes) -> None:
    with pytest.raises(ProxyError):
        parse_response_head(head)


def test_proxy_response_is_the_public_response() -> None:
    import wsclient

    assert ProxyResponse is wsclient.Response
    response = ProxyResponse(407, "Proxy Authentication Required", wsclient.Headers({"A": "b"}), b"x")
    assert response.headers["a"] == "b"
