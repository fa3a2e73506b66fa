"""Unit checks of issue 9's input rules: URL redaction and hosts, header fields, User-Agent,
status messages (no sockets)."""

from __future__ import annotations

import pytest

from wsclient import ClientConfig, InvalidStatus, InvalidURL
from wsclient.config import default_user_agent
from wsclient.exceptions import redact_url, status_message
from wsclient.handshake import ClientHandshake, Headers, Response, check_header, header_pairs
from wsclient.uri import parse_uri, validate_host


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://u:p@h/x", "ws://***@h/x"),
        ("ws://u@h/x", "ws://***@h/x"),
        ("ws://h/x?a=@b", "ws://h/x?a=@b"),
        ("ws://h/users/@me", "ws://h/users/@me"),
        ("ws://u:p/q@h/", "ws://***@h/"),
        ("not a url", "not a url"),
        ("ws://u:p@h?x#y@z", "ws://***@h?x#y@z"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("host", ["localhost", "a.b.c", "x_y.example", "example.com.", "1.2.3.4", "a" * 63])
def test_valid_hosts(host: str) -> None:
    assert validate_host(host) == host


@pytest.mark.parametrize("host", ["a..b", ".", "..", "-a", "a-", "a" * 64, "a b", "a%b", "*.x", "a." * 128])
def test_invalid_hosts(host: str) -> None:
    with pytest.raises(ValueError):
        validate_host(host)


def test_idna_hosts_are_checked_after_encoding() -> None:
    assert parse_uri("ws://b\u00fccher.example/").host == "xn--bcher-kva.example"
    with pytest.raises(InvalidURL):
        parse_uri("ws://b\u00fccher..example/")


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "a\x1fb", "a\x7fb", "\u20ac"])
def test_check_header_refuses_without_echoing_the_value(value: str) -> None:
    with pytest.raises(ValueError) as info:
        check_header("X-Secret", value)
    assert value not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


@pytest.mark.parametrize("value", ["", "plain", "tab\there", "caf\xe9", "x" * 8000])
def test_check_header_accepts(value: str) -> None:
    check_header("X-Ok", value)


def test_header_pairs_forms() -> None:
    assert header_pairs({"A": "1"}) == [("A", "1")]
    assert header_pairs([("A", "1"), ("A", "2")]) == [("A", "1"), ("A", "2")]
    assert header_pairs({"A": b"\xe9"}, allow_bytes=True) == [("A", "\xe9")]
    for bad in ("A: 1", [("A",)], 5, {"A": b"1"}):
        with pytest.raises(ValueError):
            header_pairs(bad)


def _request(**kwargs: object) -> str:
    hs = ClientHandshake(parse_uri("ws://h/"), **kwargs)  # type: ignore[arg-type]
    return hs.request_bytes().decode("latin-1")


def test_user_agent_in_the_request() -> None:
    assert "User-Agent: agent/1\r\n" in _request(user_agent="agent/1")
    assert "User-Agent" not in _request()
    req = _request(user_agent="agent/1", headers={"user-agent": "mine"})
    assert "user-agent: mine" in req and "agent/1" not in req


def test_default_user_agent() -> None:
    import sys

    import wsclient

    agent = default_user_agent()
    assert agent == f"wsclient/{wsclient.__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
    assert ClientConfig().user_agent == agent
    assert ClientConfig(user_agent=None).user_agent is None
    with pytest.raises(ValueError):
        ClientConfig(user_agent="a\r\nb")
    with pytest.raises(ValueError):
        ClientConfig(user_agent=5)  # type: ignore[arg-type]


def test_handshake_repr_hides_headers_and_credentials() -> None:
    hs = ClientHandshake(parse_uri("ws://u:pw-secret@h/"), headers={"Authorization": "Bearer tok-secret"})
    assert "secret" not in repr(hs)


def test_status_message() -> None:
    headers = Headers([("Location", "wss://u:pw@other/x")])
    message = status_message(Response(302, "Found", headers, b""), "why not")
    assert message == (
        "server rejected WebSocket connection: HTTP 302 Found (Location: 'wss://***@other/x'): why not"
    )
    assert str(InvalidStatus(None, Response(503, "", Headers(), b""))) == (
        "server rejected WebSocket connection: HTTP 503"
    )
