"""Clean errors (issue 9): credentials never shown, bad input refused before any socket.

Each refusal is checked against a listening socket that must see no connection at all,
and each message, ``repr()`` and DEBUG log line is scanned for the password.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import wsclient
from wsclient import ConnectFailed, InvalidStatus, InvalidURL

PASSWORD = "pw-s3cr3t-Zq9"


class Listener:
    """A loopback TCP listener that nobody should reach: ``assert_untouched()`` fails when
    a connection arrived (the kernel completes it even if we never accept)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def assert_untouched(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        conn.close()
        raise AssertionError("a connection reached the listener")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="wsclient")
    return caplog


def _assert_clean(exc: BaseException, caplog: pytest.LogCaptureFixture, secret: str = PASSWORD) -> None:
    """The secret is in no message, repr, traceback (cause chain included) or log line."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert secret not in text, text


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    "template",
    [
        "ws://user:{pw}@127.0.0.1:{port}/x\x0by",  # control character in the path
        "ws://user:{pw}@127.0.0.1:{port}/x#frag",  # fragment
        "ws://user:{pw}@127.0.0.1:99999/",  # port out of range
        "ws://user:{pw}@a..b:{port}/",  # empty label
        "ws://user:{pw}@127.0.0.1:{port}/a b",  # space
        "http://user:{pw}@127.0.0.1:{port}/",  # wrong scheme
        "ws://user:{pw}/x@127.0.0.1:{port}/",  # unencoded "/" in the password
    ],
)
def test_invalid_url_never_shows_the_password(
    template: str, listener: Listener, debug_log: pytest.LogCaptureFixture
) -> None:
    url = template.format(pw=PASSWORD, port=listener.port)
    with pytest.raises(InvalidURL) as info:
        wsclient.connect(url, timeout=2)
    _assert_clean(info.value, debug_log)
    listener.assert_untouched()


def test_refused_connection_never_shows_the_password(
    refused_port: int, debug_log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConnectFailed) as info:
        wsclient.connect(f"ws://user:{PASSWORD}@127.0.0.1:{refused_port}/", timeout=2)
    _assert_clean(info.value, debug_log)


def test_invalid_status_never_shows_the_password(httpserver: Any, debug_log: pytest.LogCaptureFixture) -> None:
    httpserver.expect_request("/deny").respond_with_data("no", status=403)
    url = httpserver.url_for("/deny").replace("http://", f"ws://user:{PASSWORD}@")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(url, timeout=5)
    _assert_clean(info.value, debug_log)
    assert PASSWORD not in repr(info.value.response)


def test_open_connection_with_credentials_logs_no_password(
    websockets_server: Any, debug_log: pytest.LogCaptureFixture
) -> None:
    url = websockets_server.url("/headers").replace("ws://", f"ws://user:{PASSWORD}@")
    with wsclient.connect(url, timeout=5) as ws:
        sent = ws.recv(timeout=5)
        for text in (repr(ws), repr(ws.response), str(ws.response.headers)):
            assert PASSWORD not in text
    # The credentials did go to the server (Basic), just never into text we produce.
    assert "basic " in sent.lower()
    assert not [r for r in debug_log.records if PASSWORD in r.getMessage()]


def test_uri_repr_hides_credentials() -> None:
    from wsclient.uri import parse_uri

    uri = parse_uri(f"wss://user:{PASSWORD}@example.com/")
    assert uri.user_info == ("user", PASSWORD)
    assert PASSWORD not in repr(uri) and PASSWORD not in str(uri)


# --------------------------------------------------------------------------- control characters


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0x20), 0x7F]])
@pytest.mark.parametrize("where", ["query", "host", "path"])
def test_control_characters_anywhere_raise_invalid_url(char: str, where: str, listener: Listener) -> None:
    url = {
        "query": f"ws://127.0.0.1:{listener.port}/p?a=1{char}b",
        "host": f"ws://127.0.0.{char}1:{listener.port}/",
        "path": f"ws://127.0.0.1:{listener.port}/p{char}q",
    }[where]
    with pytest.raises(InvalidURL):
        wsclient.connect(url, timeout=2)
    listener.assert_untouched()


@pytest.mark.parametrize("host", ["a..b", ".a", "a-.b", "-a.b", "a" * 64 + ".b", "a_b%.c", ("a." * 127) + "bb"])
@pytest.mark.parametrize("via_proxy", [False, True])
def test_bad_host_names_raise_invalid_url(host: str, via_proxy: bool, listener: Listener) -> None:
    """Direct and through a proxy alike (the proxy path used to fail deep in IDNA)."""
    proxies = {"all": f"http://127.0.0.1:{listener.port}"} if via_proxy else {}
    with pytest.raises(InvalidURL):
        wsclient.connect(f"wss://{host}/", proxies=proxies, timeout=2)
    listener.assert_untouched()


# --------------------------------------------------------------------------- header validation


BAD_HEADERS: list[tuple[str, Any]] = [
    ("CR LF in a value", {"X-Test": f"a\r\nInjected: {PASSWORD}"}),
    ("LF in a value", {"X-Test": f"{PASSWORD}\nx"}),
    ("vertical tab in a value", {"X-Test": f"{PASSWORD}\x0b"}),
    ("DEL in a value", {"X-Test": f"{PASSWORD}\x7f"}),
    ("un-encodable Authorization", {"Authorization": f"Bearer {PASSWORD}\u20ac"}),
    ("space in a name", {"X Test": "v"}),
    ("empty name", {"": "v"}),
    ("non-str value", {"X-Test": 5}),
    ("not pairs", ["X-Test"]),
]


@pytest.mark.parametrize(("name", "headers"), BAD_HEADERS, ids=[n for n, _ in BAD_HEADERS])
def test_bad_headers_raise_value_error_before_any_socket(
    name: str, headers: Any, listener: Listener, debug_log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError) as info:
        wsclient.connect(f"ws://127.0.0.1:{listener.port}/", headers=headers, timeout=2)
    assert not isinstance(info.value, ConnectFailed)
    _assert_clean(info.value, debug_log)
    listener.assert_untouched()


@pytest.mark.parametrize(("name", "headers"), BAD_HEADERS, ids=[n for n, _ in BAD_HEADERS])
def test_bad_proxy_headers_raise_value_error_before_any_socket(
    name: str, headers: Any, listener: Listener, debug_log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError) as info:
        wsclient.connect(
            "ws://127.0.0.1:1/",
            proxies={"all": f"http://127.0.0.1:{listener.port}"},
            request_options={"proxy_headers": headers},
            timeout=2,
        )
    assert not isinstance(info.value, ConnectFailed)
    _assert_clean(info.value, debug_log)
    listener.assert_untouched()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subprotocols": ["a b"]},
        {"subprotocols": ["chat", "x\r\ny"]},
        {"subprotocols": [b"chat"]},
        {"origin": "http://o\r\nX: y"},
        {"origin": "http://\u20ac.example"},
        {"user_agent": "agent\n"},
    ],
)
def test_bad_subprotocol_origin_user_agent_raise_value_error(kwargs: dict[str, Any], listener: Listener) -> None:
    with pytest.raises(ValueError):
        wsclient.connect(f"ws://127.0.0.1:{listener.port}/", timeout=2, **kwargs)
    listener.assert_untouched()


def test_event_api_validates_before_any_socket(listener: Listener) -> None:
    """WebSocketClient.connect(wait=False) refuses in the caller's thread, not later."""
    client = wsclient.WebSocketClient()
    with pytest.raises(ValueError):
        client.connect(
            f"ws://127.0.0.1:{listener.port}/",
            headers={"Authorization": "\u20ac"},
            wait=False,
        )
    listener.assert_untouched()


def test_latin1_header_values_are_sent(websockets_server: Any) -> None:
    """Values that are valid ISO-8859-1 (tab and é included) still go through."""
    import json

    with wsclient.connect(websockets_server.url("/headers"), headers={"X-Test": "caf\xe9\tok"}, timeout=5) as ws:
        info = json.loads(ws.recv(timeout=5))
    # The bytes on the wire are ISO-8859-1; servers show them as latin-1 text, as UTF-8
    # mojibake, or (older websockets releases) with surrogate escapes: compare the bytes.
    seen = info["headers"]["x-test"].encode("utf-8", "surrogateescape")
    assert seen in (b"caf\xe9\tok", "caf\xe9\tok".encode(), "caf\xc3\xa9\tok".encode())


# --------------------------------------------------------------------------- InvalidStatus


def test_invalid_status_message_has_status_reason_location_and_body(httpserver: Any) -> None:
    httpserver.expect_request("/moved").respond_with_data(
        "go elsewhere " * 10, status=302, headers={"Location": "/elsewhere"}
    )
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(httpserver.url_for("/moved").replace("http://", "ws://"), timeout=5)
    message = str(info.value)
    assert "302" in message and "FOUND" in message.upper() and "/elsewhere" in message
    assert info.value.response.body.startswith(b"go elsewhere")
    assert info.value.response.headers["Location"] == "/elsewhere"


def test_invalid_status_without_location(httpserver: Any) -> None:
    httpserver.expect_request("/busy").respond_with_data("busy", status=503)
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(httpserver.url_for("/busy").replace("http://", "ws://"), timeout=5)
    assert "503" in str(info.value) and "Location" not in str(info.value)


def test_user_agent_default_override_and_none(websockets_server: Any) -> None:
    import json
    import sys

    def sent(**kwargs: Any) -> dict[str, str]:
        with wsclient.connect(websockets_server.url("/headers"), timeout=5, **kwargs) as ws:
            return json.loads(ws.recv(timeout=5))["headers"]  # type: ignore[no-any-return]

    expected = f"wsclient/{wsclient.__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
    assert sent()["user-agent"] == expected
    assert sent(user_agent="probe/1")["user-agent"] == "probe/1"
    assert sent(headers={"user-agent": "mine/2"})["user-agent"] == "mine/2"
    assert "user-agent" not in sent(user_agent=None)
