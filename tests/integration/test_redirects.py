"""Redirects (issue 9): opt-in, every rule seen from the servers involved.

pytest-httpserver answers the 3xx (and records what it was asked); the websockets server's
``/headers`` path tells what the last hop's request carried.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from rawserver import wait_eof
from werkzeug import Request, Response

import wsclient
from wsclient import ConnectTimeout, InvalidStatus


def _ws(httpserver: HTTPServer, path: str) -> str:
    return httpserver.url_for(path).replace("http://", "ws://")


def _redirect(httpserver: HTTPServer, path: str, location: str, status: int = 302) -> None:
    httpserver.expect_request(path).respond_with_data("moved", status=status, headers={"Location": location})


def _requests_to(httpserver: HTTPServer, path: str) -> list[Request]:
    return [req for req, _ in httpserver.log if req.path == path]


@pytest.fixture
def tls_httpserver(server_tls: Any) -> Iterator[HTTPServer]:
    """An HTTPS server (the trustme certificate): the wss:// side of a redirect."""
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_tls.server_context)
    server.start()
    yield server
    server.clear()
    server.stop()


def _received_headers(ws: Any) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=5))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- off by default


def test_not_followed_by_default(httpserver: HTTPServer, websockets_server: Any) -> None:
    _redirect(httpserver, "/a", websockets_server.url("/headers"))
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(_ws(httpserver, "/a"), timeout=5)
    assert info.value.response.status == 302
    assert "Location" in str(info.value)
    assert not websockets_server.events.records("connection", cid=_cid(websockets_server.url("/headers")))


def _cid(url: str) -> str:
    from conftest import cid_of

    return cid_of(url)


# --------------------------------------------------------------------------- following


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_is_followed(status: int, httpserver: HTTPServer, websockets_server: Any) -> None:
    target = websockets_server.url("/headers")
    _redirect(httpserver, "/a", target, status)
    with wsclient.connect(_ws(httpserver, "/a"), follow_redirects=True, timeout=5) as ws:
        assert _received_headers(ws)["path"].startswith("/headers")


def test_relative_location_and_http_scheme_map_to_ws(httpserver: HTTPServer, websockets_server: Any) -> None:
    """/a -> "b/c" (relative) -> "../d" (relative) -> http://... (mapped to ws://)."""
    _redirect(httpserver, "/x/a", "b/c")
    _redirect(httpserver, "/x/b/c", "../d?q=1")
    target = websockets_server.url("/headers").replace("ws://", "http://")
    _redirect(httpserver, "/x/d", target, 307)
    with wsclient.connect(_ws(httpserver, "/x/a"), follow_redirects=True, timeout=5) as ws:
        assert _received_headers(ws)["path"].startswith("/headers")
    assert [r.full_path for r in _requests_to(httpserver, "/x/d")] == ["/x/d?q=1"]
    assert len(_requests_to(httpserver, "/x/b/c")) == 1


def test_ws_to_wss_upgrade_is_followed(
    httpserver: HTTPServer, websockets_tls_server: Any, ca_path: str
) -> None:
    _redirect(httpserver, "/a", websockets_tls_server.url("/headers").replace("wss://", "https://"))
    with wsclient.connect(_ws(httpserver, "/a"), follow_redirects=True, verify=ca_path, timeout=5) as ws:
        assert _received_headers(ws)["path"].startswith("/headers")


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_wss_to_ws_downgrade_is_refused(
    scheme: str, tls_httpserver: HTTPServer, websockets_server: Any, ca_path: str
) -> None:
    target = websockets_server.url("/headers").replace("ws://", f"{scheme}://")
    _redirect(tls_httpserver, "/a", target)
    url = tls_httpserver.url_for("/a").replace("https://", "wss://")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(url, follow_redirects=True, verify=ca_path, timeout=5)
    assert info.value.response.status == 302
    assert "downgrade" in str(info.value)
    time.sleep(0.2)
    assert not websockets_server.events.records("connection", cid=_cid(target))


def test_credentials_dropped_when_the_origin_changes(httpserver: HTTPServer, websockets_server: Any) -> None:
    _redirect(httpserver, "/a", websockets_server.url("/headers"))
    url = _ws(httpserver, "/a").replace("ws://", "ws://user:url-secret@")
    headers = {"Authorization": "Bearer header-secret", "Cookie": "session=cookie-secret", "X-Keep": "kept"}
    with wsclient.connect(url, headers=headers, follow_redirects=True, timeout=5) as ws:
        seen = _received_headers(ws)["headers"]
    assert "authorization" not in seen and "cookie" not in seen
    assert seen["x-keep"] == "kept"
    assert "secret" not in json.dumps(seen)
    # The first hop (the same origin as the URL) did get them.
    first = _requests_to(httpserver, "/a")[0]
    assert first.headers["Authorization"] == "Bearer header-secret"
    assert first.headers["Cookie"] == "session=cookie-secret"


def test_url_credentials_dropped_when_the_origin_changes(httpserver: HTTPServer, websockets_server: Any) -> None:
    _redirect(httpserver, "/a", websockets_server.url("/headers"))
    url = _ws(httpserver, "/a").replace("ws://", "ws://user:url-secret@")
    with wsclient.connect(url, follow_redirects=True, timeout=5) as ws:
        seen = _received_headers(ws)["headers"]
    assert "authorization" not in seen
    assert _requests_to(httpserver, "/a")[0].headers["Authorization"].startswith("Basic ")


def test_credentials_kept_on_the_same_origin(httpserver: HTTPServer) -> None:
    _redirect(httpserver, "/a", "/b")
    httpserver.expect_request("/b").respond_with_data("no", status=403)
    url = _ws(httpserver, "/a").replace("ws://", "ws://user:url-secret@")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(url, headers={"Cookie": "c=1"}, follow_redirects=True, timeout=5)
    assert info.value.response.status == 403
    second = _requests_to(httpserver, "/b")[0]
    assert second.headers["Authorization"].startswith("Basic ")
    assert second.headers["Cookie"] == "c=1"


# --------------------------------------------------------------------------- limits and refusals


def test_max_redirects(httpserver: HTTPServer) -> None:
    _redirect(httpserver, "/loop", "/loop")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(_ws(httpserver, "/loop"), follow_redirects=True, max_redirects=3, timeout=5)
    assert info.value.response.status == 302
    assert "max_redirects=3" in str(info.value)
    assert len(_requests_to(httpserver, "/loop")) == 4  # the first request and 3 redirects


def test_max_redirects_zero_follows_none(httpserver: HTTPServer) -> None:
    _redirect(httpserver, "/a", "/b")
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(_ws(httpserver, "/a"), follow_redirects=True, max_redirects=0, timeout=5)
    assert "max_redirects=0" in str(info.value)
    assert not _requests_to(httpserver, "/b")


@pytest.mark.parametrize(
    ("location", "why"),
    [
        (b"ftp://127.0.0.1/x", "http(s):// or ws(s)://"),
        (b"ws://127.0.0.1:1/a\x0bb", "not a usable URL"),
        (b"ws://a..b/", "not a usable URL"),
        (b"http://[::1/", "not a valid URL"),
    ],
)
def test_unusable_location_is_refused(location: bytes, why: str, raw_server: Any) -> None:
    """A scripted peer: werkzeug will not send such Location values."""
    answer = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    server = raw_server([wait_eof(5, required=False)], response=answer)
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(server.url(), follow_redirects=True, timeout=5)
    assert info.value.response.status == 302
    assert why in str(info.value)
    server.join()


def test_a_3xx_without_location_is_a_plain_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=301)
    with pytest.raises(InvalidStatus) as info:
        wsclient.connect(_ws(httpserver, "/a"), follow_redirects=True, timeout=5)
    assert info.value.response.status == 301


def test_one_timeout_for_all_hops(httpserver: HTTPServer) -> None:
    """Each hop takes 0.4 s: with timeout=1.2 the opening ends within the one timeout."""

    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response("moved", status=302, headers={"Location": "/slow"})

    httpserver.expect_request("/slow").respond_with_handler(slow)
    start = time.monotonic()
    with pytest.raises(ConnectTimeout):
        wsclient.connect(_ws(httpserver, "/slow"), follow_redirects=True, timeout=1.2)
    elapsed = time.monotonic() - start
    assert elapsed < 1.2 + 1.5, elapsed
    assert 2 <= len(_requests_to(httpserver, "/slow")) <= 4


# --------------------------------------------------------------------------- events


def test_http_response_fires_only_for_the_answer_not_followed(
    httpserver: HTTPServer, websockets_server: Any
) -> None:
    _redirect(httpserver, "/a", "/b")
    httpserver.expect_request("/b").respond_with_data("no", status=403)
    client = wsclient.WebSocketClient(follow_redirects=True)
    seen: list[int] = []
    failed: list[BaseException] = []
    client.on("http_response", lambda response, _client: seen.append(response.status))
    client.on("connect_failed", failed.append)
    with pytest.raises(InvalidStatus):
        client.connect(_ws(httpserver, "/a"))
    assert seen == [403] and not failed


def test_http_response_gets_the_refused_3xx(httpserver: HTTPServer) -> None:
    _redirect(httpserver, "/a", "/a")
    client = wsclient.WebSocketClient(follow_redirects=True, max_redirects=1)
    seen: list[int] = []
    done = threading.Event()
    client.on("http_response", lambda response, _client: (seen.append(response.status), done.set()))
    client.connect(_ws(httpserver, "/a"), wait=False)
    assert done.wait(5)
    assert seen == [302]
    client.abort()  # joins the opening thread


def test_redirect_options_are_validated() -> None:
    with pytest.raises(ValueError):
        wsclient.WebSocketClient(max_redirects=-1)
    with pytest.raises(ValueError):
        wsclient.WebSocketClient(follow_redirects="yes")
