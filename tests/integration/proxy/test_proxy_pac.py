"""PAC files (``proxies={"pac": URL}``) end to end: real PAC scripts evaluated by pypac,
served by a local HTTP server (pytest-httpserver) or read from ``file://``, choosing real
proxies (squid, pproxy) on loopback.

Each test checks where the connection really went: ``remote_address`` (the proxy actually
used), the proxy's access log, or the target's peer address.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxypeers import Trickler, free_port, need

import wsclient
from wsclient import ConnectTimeout, ProxyAuthenticationRequired, ProxyError
from wsclient.proxy import pac as pac_mod
from wsclient.proxy.url import ProxyURL
from wsclient.uri import parse_uri

PAC_TEMPLATE = """\
// The three classic helpers, as a company PAC uses them.
function FindProxyForURL(url, host) {
    if (dnsDomainIs(host, "localhost")) {
        return "PROXY 127.0.0.1:%(squid)d";
    }
    if (shExpMatch(url, "*/via-socks/*")) {
        return "SOCKS5 127.0.0.1:%(socks)d";
    }
    if (shExpMatch(url, "*/direct/*")) {
        return "DIRECT";
    }
    if (shExpMatch(url, "*/all-dead/*")) {
        return "PROXY 127.0.0.1:%(dead)d; PROXY 127.0.0.1:%(dead2)d";
    }
    if (shExpMatch(url, "*/needs-auth/*")) {
        return "PROXY 127.0.0.1:%(squid_basic)d; DIRECT";
    }
    if (isInNet(host, "127.0.0.0", "255.0.0.0")) {
        // Failover: a dead proxy first, then squid, then a direct connection.
        return "PROXY 127.0.0.1:%(dead)d; PROXY 127.0.0.1:%(squid)d; DIRECT";
    }
    return "DIRECT";
}
"""


@pytest.fixture(autouse=True)
def _pac_available() -> Iterator[None]:
    try:
        import dukpy  # noqa: F401
        import pypac  # noqa: F401
    except ImportError:
        need(False, "pypac/dukpy are not installed (pip install 'python-wsclient[pac]')")
    pac_mod.clear_pac_cache()
    yield
    pac_mod.clear_pac_cache()


@pytest.fixture
def pac_js(squid_open: Any, squid_basic: Any, pproxy: Any) -> str:
    return PAC_TEMPLATE % {
        "squid": squid_open.port,
        "squid_basic": squid_basic.port,
        "socks": pproxy.ports["open"],
        "dead": free_port(),
        "dead2": free_port(),
    }


@pytest.fixture
def served_pac(httpserver: Any, pac_js: str) -> str:
    httpserver.expect_request("/proxy.pac").respond_with_data(
        pac_js, content_type="application/x-ns-proxy-autoconfig"
    )
    return str(httpserver.url_for("/proxy.pac"))


@pytest.fixture
def httpserver_tls(server_tls: Any) -> Iterator[Any]:
    """An HTTPS server (pytest-httpserver) with the test CA's certificate for 127.0.0.1."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_tls.server_context)
    server.start()
    yield server
    server.clear()
    server.stop()


def _path(tag: str) -> str:
    return f"/{tag}/pac-{time.monotonic_ns()}"


def _echo(ws: Any) -> None:
    ws.send("through the PAC's choice")
    assert ws.recv(timeout=10) == "through the PAC's choice"


def _pac_requests(httpserver: Any) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == "/proxy.pac")


# --------------------------------------------------------------------------- end to end


def test_failover_skips_a_dead_proxy_to_squid(served_pac: str, squid_open: Any, ws_target: Any) -> None:
    path = _path("failover")
    with wsclient.connect(ws_target.url(path), proxies={"pac": served_pac}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address
    squid_open.wait_log(f"CONNECT 127.0.0.1:{ws_target.port}")
    ws_target.find(path)


def test_dns_domain_is_chooses_squid_for_localhost(
    served_pac: str, squid_open: Any, ws_target: Any
) -> None:
    path = _path("by-name")
    url = ws_target.url(path, host="localhost")
    with wsclient.connect(url, proxies={"pac": served_pac}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address
    squid_open.wait_log(f"CONNECT localhost:{ws_target.port}")


def test_sh_exp_match_chooses_pproxy_socks5(served_pac: str, pproxy: Any, ws_target: Any) -> None:
    path = _path("via-socks")
    with wsclient.connect(ws_target.url(path), proxies={"pac": served_pac}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", pproxy.ports["open"])
    ws_target.find(path)


def test_wss_target_through_the_pac_choice(
    served_pac: str, squid_open: Any, wss_target: Any, ca_path: str
) -> None:
    path = _path("failover-tls")
    with wsclient.connect(wss_target.url(path), proxies={"pac": served_pac}, verify=ca_path, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address
    squid_open.wait_log(f"CONNECT 127.0.0.1:{wss_target.port}")


def test_direct_answer_connects_directly(served_pac: str, ws_target: Any) -> None:
    path = _path("direct")
    with wsclient.connect(ws_target.url(path), proxies={"pac": served_pac}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", ws_target.port)
        local = ws._sock.getsockname()
    seen = ws_target.find(path)
    assert (seen.peer[0], seen.peer[1]) == (local[0], local[1])


def test_pac_from_a_file_url(tmp_path: Path, pac_js: str, squid_open: Any, ws_target: Any) -> None:
    pac_file = tmp_path / "proxy.pac"
    pac_file.write_text(pac_js)
    path = _path("from-file")
    with wsclient.connect(ws_target.url(path), proxies={"pac": pac_file.as_uri()}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address


def test_pac_over_https_is_verified(
    httpserver_tls: Any, pac_js: str, squid_open: Any, ws_target: Any, ca_path: str, other_ca_path: str
) -> None:
    httpserver_tls.expect_request("/proxy.pac").respond_with_data(pac_js)
    pac_url = httpserver_tls.url_for("/proxy.pac")
    assert pac_url.startswith("https://")
    with pytest.raises(ProxyError, match=r"PAC file .*proxy\.pac.*(certificate|TLS)"):
        wsclient.connect(ws_target.url(_path("tls-bad")), proxies={"pac": pac_url}, verify=other_ca_path, timeout=10)
    with wsclient.connect(
        ws_target.url(_path("tls-ok")), proxies={"pac": pac_url}, verify=ca_path, timeout=10
    ) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address


def test_the_pac_file_is_fetched_once(httpserver: Any, served_pac: str, ws_target: Any) -> None:
    for _ in range(3):
        with wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": served_pac}, timeout=10) as ws:
            _echo(ws)
    assert _pac_requests(httpserver) == 1


def test_concurrent_first_connections_fetch_once(httpserver: Any, served_pac: str, ws_target: Any) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": served_pac}, timeout=10) as ws:
                _echo(ws)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert _pac_requests(httpserver) == 1


def test_a_407_from_a_pac_entry_is_final(served_pac: str, squid_basic: Any, ws_target: Any) -> None:
    path = _path("needs-auth")
    with pytest.raises(ProxyAuthenticationRequired):
        wsclient.connect(ws_target.url(path), proxies={"pac": served_pac}, timeout=10)
    # "DIRECT" came after squid in the answer, but a proxy that answered is not skipped.
    assert not any(seen.path == path for seen in ws_target.seen)


def test_a_socks_authentication_failure_from_a_pac_entry_is_final(
    tmp_path: Path, dante_auth: Any, ws_target: Any
) -> None:
    pac_file = tmp_path / "socks.pac"
    pac_file.write_text(
        f'function FindProxyForURL(url, host) {{ return "SOCKS5 127.0.0.1:{dante_auth.port}; DIRECT"; }}'
    )
    path = _path("socks-auth")
    with pytest.raises(ProxyAuthenticationRequired):
        wsclient.connect(ws_target.url(path), proxies={"pac": pac_file.as_uri()}, timeout=10)
    assert not any(seen.path == path for seen in ws_target.seen)


def test_every_candidate_dead_is_a_proxy_error(served_pac: str, ws_target: Any) -> None:
    path = _path("all-dead")
    started = time.monotonic()
    with pytest.raises(ProxyError, match="cannot connect to the proxy"):
        wsclient.connect(ws_target.url(path), proxies={"pac": served_pac}, timeout=10)
    assert time.monotonic() - started < 5
    assert not any(seen.path == path for seen in ws_target.seen)


def test_no_proxy_is_applied_before_the_pac(httpserver: Any, served_pac: str, ws_target: Any) -> None:
    path = _path("failover")  # the PAC would send this through squid
    proxies = {"pac": served_pac, "no_proxy": "127.0.0.1"}
    with wsclient.connect(ws_target.url(path), proxies=proxies, timeout=10) as ws:
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", ws_target.port)
    assert _pac_requests(httpserver) == 0


def test_an_explicit_scheme_key_wins_over_the_pac(
    httpserver: Any, served_pac: str, pproxy: Any, ws_target: Any
) -> None:
    proxies = {"pac": served_pac, "ws": f"http://127.0.0.1:{pproxy.ports['open']}"}
    with wsclient.connect(ws_target.url(_path("failover")), proxies=proxies, timeout=10) as ws:
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", pproxy.ports["open"])
    assert _pac_requests(httpserver) == 0


def test_request_options_proxy_wins_over_the_pac(httpserver: Any, served_pac: str, ws_target: Any) -> None:
    with wsclient.connect(
        ws_target.url(_path("failover")), proxies={"pac": served_pac}, request_options={"proxy": ""}, timeout=10
    ) as ws:
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", ws_target.port)
    assert _pac_requests(httpserver) == 0


# --------------------------------------------------------------------------- failures


def test_unreachable_pac_server_is_a_proxy_error_not_a_direct_connection(ws_target: Any) -> None:
    pac_url = f"http://pacuser:pac-secret@127.0.0.1:{free_port()}/proxy.pac"
    path = _path("direct")
    with pytest.raises(ProxyError) as info:
        wsclient.connect(ws_target.url(path), proxies={"pac": pac_url}, timeout=10)
    message = str(info.value)
    assert "PAC file http://***@127.0.0.1:" in message
    assert "pac-secret" not in message and "pacuser" not in message
    assert not any(seen.path == path for seen in ws_target.seen)


def test_a_redirected_pac_url_is_followed(httpserver: Any, served_pac: str, squid_open: Any, ws_target: Any) -> None:
    httpserver.expect_request("/old.pac").respond_with_data("", status=302, headers={"Location": "/hop.pac"})
    httpserver.expect_request("/hop.pac").respond_with_data("", status=301, headers={"Location": served_pac})
    path = _path("failover")
    with wsclient.connect(ws_target.url(path), proxies={"pac": httpserver.url_for("/old.pac")}, timeout=10) as ws:
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address


def test_a_pac_redirect_loop_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    httpserver.expect_request("/loop.pac").respond_with_data("", status=302, headers={"Location": "/loop.pac"})
    with pytest.raises(ProxyError, match=r"PAC file .*loop.pac.*more than 3 redirects"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/loop.pac")}, timeout=10)


def test_a_pac_file_over_the_size_limit_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    script = 'function FindProxyForURL(url, host) { return "DIRECT"; }\n'
    httpserver.expect_request("/huge.pac").respond_with_data(script + "//" + "x" * pac_mod.MAX_PAC_SIZE)
    with pytest.raises(ProxyError, match=r"PAC file .*huge.pac is larger than"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/huge.pac")}, timeout=10)


def test_pac_404_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    httpserver.expect_request("/missing.pac").respond_with_data("no", status=404)
    with pytest.raises(ProxyError, match=r"PAC file .*missing.pac.*404"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/missing.pac")}, timeout=10)


def test_missing_pac_file_is_a_proxy_error(tmp_path: Path, ws_target: Any) -> None:
    url = (tmp_path / "nowhere.pac").as_uri()
    with pytest.raises(ProxyError, match="cannot read the PAC file"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": url}, timeout=10)


def test_pac_with_a_syntax_error_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    httpserver.expect_request("/broken.pac").respond_with_data("function FindProxyForURL(url, host) { return ; ")
    with pytest.raises(ProxyError, match=r"PAC file .*broken.pac cannot be evaluated"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/broken.pac")}, timeout=10)


def test_pac_that_throws_at_run_time_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    js = 'function FindProxyForURL(url, host) { if (host != "0.0.0.0") { throw new Error("boom"); } return "DIRECT"; }'
    httpserver.expect_request("/throws.pac").respond_with_data(js)
    with pytest.raises(ProxyError, match=r"PAC file .*throws.pac failed for http://127.0.0.1:\d+/.*boom"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/throws.pac")}, timeout=10)


def test_pac_with_an_unusable_answer_is_a_proxy_error(httpserver: Any, ws_target: Any) -> None:
    httpserver.expect_request("/odd.pac").respond_with_data(
        'function FindProxyForURL(url, host) { return "BOGUS x; QUIC y:1"; }'
    )
    with pytest.raises(ProxyError, match="unusable answer"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": httpserver.url_for("/odd.pac")}, timeout=10)


def _pac_answering(tmp_path: Path, answer: str) -> str:
    """The file:// URL of a PAC file whose FindProxyForURL always returns ``answer``."""
    pac_file = tmp_path / "answer.pac"
    pac_file.write_text(f'function FindProxyForURL(url, host) {{ return "{answer}"; }}')
    return pac_file.as_uri()


def _hold(proxy: Any, conn: socket.socket) -> None:
    """A proxy that accepts the connection and never says a word."""
    conn.recv(4096)
    conn.recv(1)


def _hang_up(proxy: Any, conn: socket.socket) -> None:
    """A proxy that reads the first bytes and closes without answering."""
    conn.recv(4096)
    conn.close()


@pytest.mark.parametrize("entry", ["PROXY", "HTTPS", "SOCKS5"])
@pytest.mark.parametrize("behaviour", [_hold, _hang_up], ids=["silent", "hangs-up"])
def test_a_proxy_that_accepts_but_never_answers_gives_way_to_the_next(
    tmp_path: Path, scripted_proxy: Any, squid_open: Any, ws_target: Any, entry: str, behaviour: Any
) -> None:
    mute = scripted_proxy(behaviour)
    pac = _pac_answering(tmp_path, f"{entry} 127.0.0.1:{mute.port}; PROXY 127.0.0.1:{squid_open.port}")
    path = _path("mute-first")
    started = time.monotonic()
    with wsclient.connect(ws_target.url(path), proxies={"pac": pac}, timeout=8) as ws:
        # The mute proxy had its share (half of the 8 s), not the whole timeout.
        assert time.monotonic() - started < 4 + 2
        _echo(ws)
        assert tuple(ws.remote_address[:2]) == squid_open.address
    assert mute._conns, "the mute proxy was never tried"
    squid_open.wait_log(f"CONNECT 127.0.0.1:{ws_target.port}")


@pytest.mark.parametrize("entry", ["PROXY", "SOCKS5"])
def test_a_silent_last_candidate_is_a_connect_timeout_within_the_timeout(
    tmp_path: Path, scripted_proxy: Any, ws_target: Any, entry: str
) -> None:
    mute = scripted_proxy(_hold)
    pac = _pac_answering(tmp_path, f"PROXY 127.0.0.1:{free_port()}; {entry} 127.0.0.1:{mute.port}")
    started = time.monotonic()
    with pytest.raises(ConnectTimeout, match="timed out"):
        wsclient.connect(ws_target.url(_path("mute-last")), proxies={"pac": pac}, timeout=1.5)
    assert time.monotonic() - started < 1.5 + 1.5


def test_a_proxy_that_answers_garbage_is_final(
    tmp_path: Path, scripted_proxy: Any, squid_open: Any, ws_target: Any
) -> None:
    def garbage(proxy: Any, conn: socket.socket) -> None:
        proxy.read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.close()

    odd = scripted_proxy(garbage)
    pac = _pac_answering(tmp_path, f"PROXY 127.0.0.1:{odd.port}; PROXY 127.0.0.1:{squid_open.port}")
    path = _path("garbage-first")
    with pytest.raises(ProxyError, match="bad answer"):
        wsclient.connect(ws_target.url(path), proxies={"pac": pac}, timeout=8)
    assert not any(seen.path == path for seen in ws_target.seen)


def test_a_pac_server_that_never_answers_is_bounded_by_the_timeout(ws_target: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def hold() -> None:
        try:
            conn, _ = listener.accept()
            accepted.append(conn)
        except OSError:
            pass

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    pac_url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.pac"
    started = time.monotonic()
    try:
        with pytest.raises(ConnectTimeout, match="PAC file"):
            wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": pac_url}, timeout=1.0)
        assert time.monotonic() - started < 1.0 + 1.5
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


@pytest.mark.parametrize("stage", ["head", "body"])
def test_a_pac_server_trickling_its_answer_is_bounded_by_the_timeout(ws_target: Any, stage: str) -> None:
    body = b'function FindProxyForURL(url, host) { return "DIRECT"; }' + b" " * 64
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)

    def answer(trickler: Trickler, conn: socket.socket) -> None:
        conn.recv(4096)
        if stage == "body":
            conn.sendall(head)
        trickler.send(conn, head + body if stage == "head" else body)

    with Trickler(answer) as server:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout, match="PAC file"):
            pac_url = f"http://127.0.0.1:{server.port}/trickle.pac"
            wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": pac_url}, timeout=1.0)
        assert time.monotonic() - started < 1.0 + 1.5


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ws_target: Any) -> None:
    pac_file = tmp_path / "proxy.pac"
    pac_file.write_text('function FindProxyForURL(url, host) { return "DIRECT"; }')
    monkeypatch.setitem(__import__("sys").modules, "pypac.parser", None)
    with pytest.raises(ProxyError, match=r"wsclient\[pac\]"):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": pac_file.as_uri()}, timeout=10)


# --------------------------------------------------------------------------- the pieces


def test_parse_pac_answer_keywords() -> None:
    parse = pac_mod.parse_pac_answer
    assert parse("PROXY p:3128; DIRECT") == (ProxyURL("http", "p", 3128), None)
    assert parse(" proxy p:3128 ;;direct ") == (ProxyURL("http", "p", 3128), None)
    assert parse("HTTPS p") == (ProxyURL("https", "p", 443),)
    assert parse("HTTP p:8080") == (ProxyURL("http", "p", 8080),)
    assert parse("SOCKS s:1080; SOCKS4 t:1081; SOCKS5 u") == (
        ProxyURL("socks4", "s", 1080),
        ProxyURL("socks4", "t", 1081),
        ProxyURL("socks5h", "u", 1080),
    )
    assert parse("PROXY [::1]:3128") == (ProxyURL("http", "::1", 3128),)
    assert parse("PROXY a:1; PROXY a:1; DIRECT; DIRECT") == (ProxyURL("http", "a", 1), None)
    # Unknown or malformed entries are skipped, the rest is kept in order.
    assert parse("QUIC q:443; PROXY; PROXY a:notaport; PROXY b:2") == (ProxyURL("http", "b", 2),)
    for unusable in ("", " ; ", "BOGUS", "PROXY"):
        with pytest.raises(ValueError):
            parse(unusable)


def test_http_equivalent() -> None:
    eq = pac_mod.http_equivalent
    assert eq(parse_uri("ws://h:8080/x?y=1")) == ("http://h:8080/x?y=1", "h")
    assert eq(parse_uri("wss://h/x")) == ("https://h/x", "h")
    assert eq(parse_uri("ws://h:80")) == ("http://h/", "h")
    assert eq(parse_uri("wss://[::1]:8443/")) == ("https://[::1]:8443/", "::1")


def test_resolve_pac_accepts_a_deadline_object(tmp_path: Path) -> None:
    pac_file = tmp_path / "proxy.pac"
    pac_file.write_text('function FindProxyForURL(url, host) { return "PROXY p:1; DIRECT"; }')

    class Deadline:
        def remaining(self) -> float:
            return 5.0

    candidates, reason = pac_mod.resolve_pac(pac_file.as_uri(), parse_uri("ws://h/"), Deadline(), None)
    assert candidates == (ProxyURL("http", "p", 1), None)
    assert reason == f"PAC file {pac_file.as_uri()} returned 'PROXY p:1; DIRECT'"


# --------------------------------------------------------------------------- discovery: "auto"


def test_auto_uses_the_first_discovered_pac_that_answers(
    monkeypatch: pytest.MonkeyPatch, httpserver: Any, pac_js: str, squid_open: Any, ws_target: Any
) -> None:
    httpserver.expect_request("/wpad.dat").respond_with_data(pac_js)
    calls: list[int] = []

    def urls() -> list[str]:
        calls.append(1)
        return [f"http://127.0.0.1:{free_port()}/wpad.dat", httpserver.url_for("/wpad.dat")]

    monkeypatch.setattr(pac_mod, "discover_pac_urls", urls)
    for _ in range(2):
        with wsclient.connect(ws_target.url(_path("failover")), proxies={"pac": "auto"}, timeout=10) as ws:
            _echo(ws)
            assert tuple(ws.remote_address[:2]) == squid_open.address
    assert calls == [1]  # discovery runs once per process
    assert sum(1 for request, _ in httpserver.log if request.path == "/wpad.dat") == 1


def test_auto_skips_a_candidate_that_never_answers(
    monkeypatch: pytest.MonkeyPatch, httpserver: Any, pac_js: str, squid_open: Any, ws_target: Any
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    httpserver.expect_request("/wpad.dat").respond_with_data(pac_js)
    slow = f"http://127.0.0.1:{listener.getsockname()[1]}/wpad.dat"
    monkeypatch.setattr(pac_mod, "discover_pac_urls", lambda: [slow, httpserver.url_for("/wpad.dat")])
    monkeypatch.setattr(pac_mod, "DISCOVERY_TRY_TIMEOUT", 0.5)
    started = time.monotonic()
    try:
        with wsclient.connect(ws_target.url(_path("failover")), proxies={"pac": "auto"}, timeout=5) as ws:
            assert tuple(ws.remote_address[:2]) == squid_open.address
    finally:
        listener.close()
    assert time.monotonic() - started < 0.5 + 1.5


def test_auto_discovery_that_hangs_is_bounded_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch, httpserver: Any, pac_js: str, squid_open: Any, ws_target: Any
) -> None:
    """Asking the OS or DNS for the PAC URLs can hang (a gsettings process, the machine's
    own name): the opening gives up at its timeout; a later one finds the answer."""
    release = threading.Event()
    httpserver.expect_request("/wpad.dat").respond_with_data(pac_js)

    def slow_urls() -> list[str]:
        release.wait(10)
        return [httpserver.url_for("/wpad.dat")]

    monkeypatch.setattr(pac_mod, "discover_pac_urls", slow_urls)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectTimeout, match="discovering the PAC file"):
            wsclient.connect(ws_target.url(_path("failover")), proxies={"pac": "auto"}, timeout=0.5)
        assert time.monotonic() - started < 0.5 + 1.5
    finally:
        release.set()
    with wsclient.connect(ws_target.url(_path("failover")), proxies={"pac": "auto"}, timeout=10) as ws:
        assert tuple(ws.remote_address[:2]) == squid_open.address


def test_auto_without_any_pac_connects_directly(monkeypatch: pytest.MonkeyPatch, ws_target: Any) -> None:
    monkeypatch.setattr(pac_mod, "discover_pac_urls", lambda: [f"http://127.0.0.1:{free_port()}/wpad.dat"])
    with wsclient.connect(ws_target.url(_path("failover")), proxies={"pac": "auto"}, timeout=10) as ws:
        assert tuple(ws.remote_address[:2]) == ("127.0.0.1", ws_target.port)
    candidates, reason = pac_mod.resolve_pac("auto", parse_uri("ws://h/"), time.monotonic() + 5, None)
    assert candidates == (None,) and "no PAC file found" in reason


def test_discovery_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "pc7.corp.example.com")
    monkeypatch.setattr(pac_mod, "_os_pac_setting", lambda: None)
    assert pac_mod.discover_pac_urls() == [
        "http://wpad.corp.example.com/wpad.dat",
        "http://wpad.example.com/wpad.dat",
    ]
    # The OS setting comes first; a bare path (Windows and macOS accept one) becomes file://.
    monkeypatch.setattr(pac_mod, "_os_pac_setting", lambda: "/etc/corp/proxy.pac")
    assert pac_mod.discover_pac_urls()[0] == "file:///etc/corp/proxy.pac"
    # A host name without a domain gives no WPAD URL (never a bare "wpad").
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "laptop")
    monkeypatch.setattr(pac_mod, "_os_pac_setting", lambda: None)
    assert pac_mod.discover_pac_urls() == []


# --------------------------------------------------------------------------- endless scripts


def _pac_workers() -> list[int]:
    """PIDs of this process's PAC evaluator children (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == __import__("os").getpid() and b"wsclient.proxy._pac_worker" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    "js",
    [
        'function FindProxyForURL(url, host) { while (true) {} return "DIRECT"; }',
        'while (true) {}\nfunction FindProxyForURL(url, host) { return "DIRECT"; }',
    ],
    ids=["in-FindProxyForURL", "at-load"],
)
def test_a_pac_script_that_never_returns_is_bounded_and_freezes_nothing(
    tmp_path: Path, ws_target: Any, served_pac: str, js: str
) -> None:
    # The JS engine holds the GIL while it runs: in-process, this loop would stop every
    # thread of the program for good. Another thread must keep running meanwhile.
    pac_file = tmp_path / "endless.pac"
    pac_file.write_text(js)
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConnectTimeout, match=r"PAC file .*endless.pac.*did not return in time"):
            wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": pac_file.as_uri()}, timeout=1.5)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        ticker.join(5)
    assert elapsed < 1.5 + 1.0
    assert ticks > 40  # the other thread ran through the whole wait (~150 ticks)
    assert _pac_workers() == []  # the stuck evaluator was killed, not left spinning
    # The program goes on: another PAC file works, and the looping one fails again in time.
    with wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": served_pac}, timeout=10) as ws:
        assert ws.remote_address is not None
    with pytest.raises(ConnectTimeout):
        wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": pac_file.as_uri()}, timeout=0.5)


def test_pac_evaluator_processes_end_with_the_cache(served_pac: str, ws_target: Any) -> None:
    with wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": served_pac}, timeout=10):
        pass
    assert len(_pac_workers()) == 1  # one evaluator per PAC file, kept for later connections
    with wsclient.connect(ws_target.url(_path("direct")), proxies={"pac": served_pac}, timeout=10):
        pass
    assert len(_pac_workers()) == 1
    pac_mod.clear_pac_cache()
    assert _pac_workers() == []
