"""Proxy URL parsing and proxy selection (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from wsclient.exceptions import InvalidURL, ProxyError
from wsclient.proxy import ProxySelection, ProxyURL, no_proxy_matches, parse_proxy_url, redact_url
from wsclient.proxy import select_proxy as select
from wsclient.uri import parse_uri

WS = parse_uri("ws://example.com/feed")
WSS = parse_uri("wss://example.com/feed")


def select_proxy(*args: Any, **kwargs: Any) -> Any:
    """The single candidate of a selection (every non-PAC selection has exactly one)."""
    selection = select(*args, **kwargs)
    assert isinstance(selection, ProxySelection) and len(selection.candidates) == 1 and selection.source
    return selection.proxy


# --------------------------------------------------------------------------- ProxyURL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy:3128", ProxyURL("http", "proxy", 3128)),
        ("http://proxy", ProxyURL("http", "proxy", 80)),
        ("https://proxy", ProxyURL("https", "proxy", 443)),
        ("socks4://p", ProxyURL("socks4", "p", 1080)),
        ("socks4a://p:9", ProxyURL("socks4a", "p", 9)),
        ("socks5://p", ProxyURL("socks5", "p", 1080)),
        ("SOCKS5H://P:1", ProxyURL("socks5h", "p", 1)),
        ("proxy.corp:8080", ProxyURL("http", "proxy.corp", 8080)),
        ("http://[::1]:3128/", ProxyURL("http", "::1", 3128)),
        ("http://user:p%40ss@proxy:1", ProxyURL("http", "proxy", 1, "user", "p@ss")),
        ("http://CORP%5Cjane:pw@proxy:1", ProxyURL("http", "proxy", 1, "CORP\\jane", "pw")),
        ("http://user@proxy:1", ProxyURL("http", "proxy", 1, "user", None)),
        ("http://user:@proxy:1", ProxyURL("http", "proxy", 1, "user", "")),
        ("  http://proxy:1  ", ProxyURL("http", "proxy", 1)),
        ("http://bücher.example:1", ProxyURL("http", "xn--bcher-kva.example", 1)),
    ],
)
def test_parse_proxy_url(url: str, expected: ProxyURL) -> None:
    assert parse_proxy_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://proxy:21",
        "ws://proxy:80",
        "socks6://proxy",
        "http://",
        "http://proxy:notaport",
        "http://proxy:0",
        "http://proxy:99999",
        "http://pro xy:1",
        "http://proxy:1\r\nX: y",
    ],
)
def test_parse_proxy_url_refuses(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_proxy_url(url)


def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_proxy_url("gopher://proxy")


def test_password_never_shown() -> None:
    proxy = parse_proxy_url("http://alice:Sup3r%2Fsecret@proxy:3128")
    assert proxy.password == "Sup3r/secret"
    for text in (str(proxy), repr(proxy), f"{proxy}", f"{proxy!r}"):
        assert "Sup3r" not in text
    assert "alice" not in str(proxy)
    assert str(proxy) == "http://proxy:3128"
    assert "password='***'" in repr(proxy)


@pytest.mark.parametrize(
    "url",
    [
        "gopher://bob:hunter2@proxy:1",
        "http://bob:hunter2@proxy:notaport",
        "http://bob:hun/ter2@proxy:3128",
        "http://bob:hunter2@",
    ],
)
def test_password_not_in_parse_errors(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_proxy_url(url)
    assert "hunter2" not in str(info.value)
    assert "hun/ter2" not in str(info.value)
    assert info.value.__cause__ is None or "hunter2" not in str(info.value.__cause__)


def test_redact_url() -> None:
    assert redact_url("http://a:b@h:1/x") == "http://***@h:1/x"
    assert redact_url("http://h:1") == "http://h:1"
    assert redact_url("a:b@h:1") == "***@h:1"
    assert "secret" not in redact_url("http://u:se/cr@et@h:1")


def test_ipv6_authority() -> None:
    proxy = parse_proxy_url("socks5h://[::1]:1080")
    assert proxy.host == "::1"
    assert proxy.authority == "[::1]:1080"
    assert str(proxy) == "socks5h://[::1]:1080"
    assert proxy.is_socks and not proxy.is_tls


# --------------------------------------------------------------------------- environment


def test_environment_per_scheme() -> None:
    env = {"HTTP_PROXY": "http://h:1", "HTTPS_PROXY": "http://s:2"}
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env) == ProxyURL(
        "http", "h", 1
    )
    assert select_proxy(WSS, proxies=None, trust_env=True, request_proxy=None, environ=env) == ProxyURL(
        "http", "s", 2
    )


def test_ws_proxy_beats_http_proxy_beats_all_proxy() -> None:
    env = {"WS_PROXY": "http://ws:1", "HTTP_PROXY": "http://http:2", "ALL_PROXY": "socks5://all:3"}
    pick = lambda e: select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=e)  # noqa: E731
    assert pick(env).host == "ws"
    del env["WS_PROXY"]
    assert pick(env).host == "http"
    del env["HTTP_PROXY"]
    assert pick(env) == ProxyURL("socks5", "all", 3)


def test_wss_chain() -> None:
    env = {"WSS_PROXY": "http://wss:1", "HTTPS_PROXY": "http://https:2", "HTTP_PROXY": "http://no:3"}
    pick = lambda e: select_proxy(WSS, proxies=None, trust_env=True, request_proxy=None, environ=e)  # noqa: E731
    assert pick(env).host == "wss"
    del env["WSS_PROXY"]
    assert pick(env).host == "https"
    del env["HTTPS_PROXY"]
    assert pick(env) is None  # HTTP_PROXY never serves wss://


def test_lower_case_wins() -> None:
    env = {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:2"}
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env).host == "lower"


def test_empty_lower_case_hides_upper_case() -> None:
    env = {"HTTP_PROXY": "http://upper:1", "http_proxy": "", "ALL_PROXY": "http://all:3"}
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env).host == "all"


def test_cgi_ignores_upper_case_http_proxy() -> None:
    env = {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"}
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env) is None
    env["http_proxy"] = "http://admin:2"
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env).host == "admin"


_PROXY_VARIABLES = ("ws_proxy", "wss_proxy", "http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:2"},
        {"HTTP_PROXY": "http://upper:1", "http_proxy": "", "ALL_PROXY": "http://all:3"},
        {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"},
        {"WS_PROXY": "http://ws:1", "NO_PROXY": "example.com"},
        {"ws_proxy": "http://ws:1", "no_proxy": "other.org", "NO_PROXY": "example.com"},
        {"WSS_PROXY": "http://wss:1", "https_proxy": "http://https:2"},
    ],
)
def test_process_environment_reads_like_a_mapping(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """os.environ itself (environ=None, read through its dict for speed) gives the same
    choice as the same variables passed as a mapping."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for uri in (WS, WSS):
        from_process = select(uri, proxies=None, trust_env=True, request_proxy=None)
        from_mapping = select(uri, proxies=None, trust_env=True, request_proxy=None, environ=env)
        assert from_process == from_mapping


def test_trust_env_false_ignores_environment() -> None:
    env = {"HTTP_PROXY": "http://h:1", "ALL_PROXY": "http://a:1"}
    assert select_proxy(WS, proxies=None, trust_env=False, request_proxy=None, environ=env) is None


def test_no_proxy_from_environment() -> None:
    env = {"HTTP_PROXY": "http://h:1", "NO_PROXY": "other.org, .example.com"}
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env) is None
    env["no_proxy"] = "other.org"  # lower case wins
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env) is not None


def test_environment_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ws_proxy", "http_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("WS_PROXY", "socks5h://envproxy:1080")
    assert select_proxy(WS, proxies=None, trust_env=True, request_proxy=None) == ProxyURL(
        "socks5h", "envproxy", 1080
    )


def test_environment_bad_scheme_is_invalid_url() -> None:
    env = {"HTTP_PROXY": "ftp://h:1"}
    with pytest.raises(InvalidURL):
        select_proxy(WS, proxies=None, trust_env=True, request_proxy=None, environ=env)


# --------------------------------------------------------------------------- proxies=


ENV = {"HTTP_PROXY": "http://env:1", "HTTPS_PROXY": "http://env:1", "ALL_PROXY": "http://env:1"}


def test_empty_dict_means_direct_and_ignores_environment() -> None:
    assert select_proxy(WS, proxies={}, trust_env=True, request_proxy=None, environ=ENV) is None


def test_dict_keys() -> None:
    proxies = {"ws": "http://a:1", "wss": "https://b:2", "all": "socks5://c:3"}
    assert select_proxy(WS, proxies=proxies, trust_env=True, request_proxy=None, environ=ENV).host == "a"
    assert select_proxy(WSS, proxies=proxies, trust_env=True, request_proxy=None, environ=ENV).host == "b"
    assert select_proxy(WS, proxies={"all": "socks5://c:3"}, trust_env=True, request_proxy=None).host == "c"


def test_dict_http_fallback_keys() -> None:
    proxies = {"http": "http://h:1", "https": "http://s:2"}
    assert select_proxy(WS, proxies=proxies, trust_env=False, request_proxy=None).host == "h"
    assert select_proxy(WSS, proxies=proxies, trust_env=False, request_proxy=None).host == "s"


def test_dict_host_keys_win() -> None:
    proxies = {"wss://example.com": "http://special:1", "wss": "http://general:2", "all://example.com": "x"}
    assert select_proxy(WSS, proxies=proxies, trust_env=False, request_proxy=None).host == "special"
    other = parse_uri("wss://other.org")
    assert select_proxy(other, proxies=proxies, trust_env=False, request_proxy=None).host == "general"


def test_dict_none_or_empty_value_means_direct() -> None:
    assert (
        select_proxy(WS, proxies={"ws": None, "all": "http://a:1"}, trust_env=True, request_proxy=None)
        is None
    )
    assert (
        select_proxy(WS, proxies={"ws": "", "all": "http://a:1"}, trust_env=True, request_proxy=None) is None
    )


def test_dict_no_proxy() -> None:
    proxies = {"all": "http://a:1", "no_proxy": "example.com"}
    assert select_proxy(WS, proxies=proxies, trust_env=True, request_proxy=None) is None
    env = {"NO_PROXY": "*"}
    proxies = {"all": "http://a:1"}
    # The environment's NO_PROXY does not apply to a given dict.
    assert select_proxy(WS, proxies=proxies, trust_env=True, request_proxy=None, environ=env) is not None


def test_dict_bad_scheme() -> None:
    with pytest.raises(InvalidURL):
        select_proxy(WS, proxies={"ws": "quic://x:1"}, trust_env=False, request_proxy=None)


# --------------------------------------------------------------------------- request_options["proxy"]


def test_request_proxy_wins_over_everything() -> None:
    proxies = {"all": "http://dict:1", "no_proxy": "*"}
    chosen = select_proxy(
        WS, proxies=proxies, trust_env=True, request_proxy="socks5h://req:9", environ={"NO_PROXY": "*"}
    )
    assert chosen == ProxyURL("socks5h", "req", 9)


def test_request_proxy_empty_means_direct() -> None:
    assert (
        select_proxy(WS, proxies={"all": "http://dict:1"}, trust_env=True, request_proxy="", environ=ENV)
        is None
    )


# --------------------------------------------------------------------------- NO_PROXY matching


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("example.com", 80, "*", True),
        ("example.com", 80, "example.com", True),
        ("EXAMPLE.com", 80, "example.COM", True),
        ("example.com.", 80, "example.com", True),
        ("www.example.com", 80, "example.com", True),
        ("www.example.com", 80, ".example.com", True),
        ("example.com", 80, ".example.com", True),
        ("www.example.com", 80, "*.example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("example.com.evil", 80, "example.com", False),
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 80, "example.com:8080", False),
        ("localhost", 80, "a.b, localhost ,c.d", True),
        ("localhost", 80, "a.b localhost", True),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("10.1.2.3", 443, "10.1.2.3:443", True),
        ("10.1.2.3", 80, "10.1.2.3:443", False),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 80, "[::1]:8080", False),
        ("fd00::5", 80, "fd00::/8", True),
        ("fe80::1", 80, "fd00::/8", False),
        ("fd00::5", 80, "[fd00::]/8", True),
        ("[::1]", 80, "::1", True),
        ("127.0.0.1", 80, "localhost", False),  # names are not resolved
        ("localhost", 80, "127.0.0.1", False),
        ("10.1.2.3", 80, "::/0", False),  # no cross-family match
        ("example.com", 80, "", False),
        ("example.com", 80, "exa mple.com", False),
        ("example.com", 80, "[bad, example.com:port, example.com", True),
    ],
)
def test_no_proxy_matches(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert no_proxy_matches(host, port, no_proxy) is expected


def test_no_proxy_list_form() -> None:
    assert no_proxy_matches("a.example", 80, ["x.org", "example"]) is True
    assert no_proxy_matches("a.example", 80, ["x.org"]) is False


def test_no_proxy_with_ipv6_uri() -> None:
    uri = parse_uri("ws://[::1]:9000/")
    proxies = {"all": "http://p:1", "no_proxy": "[::1]:9000"}
    assert select_proxy(uri, proxies=proxies, trust_env=False, request_proxy=None) is None
    proxies["no_proxy"] = "::1/128"
    assert select_proxy(uri, proxies=proxies, trust_env=False, request_proxy=None) is None


# --------------------------------------------------------------------------- why: the source


def source(uri: Any = WS, **kwargs: Any) -> str:
    kwargs.setdefault("proxies", None)
    kwargs.setdefault("trust_env", True)
    kwargs.setdefault("request_proxy", None)
    return str(select(uri, **kwargs).source)


def test_sources_say_why() -> None:
    assert source(request_proxy="http://u:secret@r:1") == "request_options['proxy']"
    assert source(request_proxy="") == "request_options['proxy'] is empty (direct)"
    assert source(WSS, proxies={"wss": "http://a:1", "all": "http://b:2"}) == "proxies['wss']"
    assert source(WSS, proxies={"https": "http://a:1"}) == "proxies['https']"
    assert source(proxies={"ws": ""}) == "proxies['ws'] is empty"
    assert source(proxies={}) == "no proxies entry for ws:// (direct)"
    no_proxy = {"all": "http://a:1", "no_proxy": "other, .example.com"}
    assert source(proxies=no_proxy) == "proxies['no_proxy'] entry '.example.com' matched"
    env = {"https_proxy": "http://u:secret@p:1", "NO_PROXY": ".corp"}
    assert source(WSS, environ=env) == "environment variable https_proxy"
    assert source(WSS, environ={"HTTPS_PROXY": "http://p:1"}) == "environment variable HTTPS_PROXY"
    assert source(parse_uri("wss://x.corp"), environ=env) == "NO_PROXY entry '.corp' matched"
    assert source(environ={}) == "no proxy configured"
    assert source(trust_env=False) == "no proxy configured (trust_env=False)"


def test_sources_never_show_credentials() -> None:
    env = {"ALL_PROXY": "http://user:Hidden-Pw@p:1"}
    selection = select(WS, proxies=None, trust_env=True, request_proxy=None, environ=env)
    assert "Hidden-Pw" not in selection.source and "Hidden-Pw" not in repr(selection)


@pytest.mark.parametrize("key", ["wws", "HTTP", "socks", "ftp://example.com", "ws://", "noproxy", ""])
def test_unknown_proxies_key_is_value_error(key: str) -> None:
    with pytest.raises(ValueError, match=repr(key)):
        select(WS, proxies={key: "http://a:1"}, trust_env=True, request_proxy=None)


def test_all_documented_keys_are_accepted() -> None:
    proxies = {
        "ws": "http://a:1", "wss": "http://a:1", "http": "http://a:1", "https": "http://a:1",
        "all": "http://a:1", "ws://h": "http://a:1", "all://h": "http://a:1", "no_proxy": "x", "pac": "file:///p",
    }
    assert select(WS, proxies=proxies, trust_env=True, request_proxy=None).proxy == ProxyURL("http", "a", 1)


def test_pac_key_goes_to_the_pac_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsclient.proxy import pac

    seen: list[Any] = []

    def fake(pac_url: str, uri: Any, deadline: Any, options: Any) -> tuple[tuple[Any, ...], str]:
        seen.append((pac_url, uri.host))
        return (ProxyURL("http", "pacproxy", 8080), None), "PAC file http://wpad/proxy.pac"

    monkeypatch.setattr(pac, "resolve_pac", fake)
    selection = select(WS, proxies={"pac": "http://wpad/proxy.pac"}, trust_env=True, request_proxy=None)
    assert selection.candidates == (ProxyURL("http", "pacproxy", 8080), None)
    assert selection.source == "PAC file http://wpad/proxy.pac" and seen == [("http://wpad/proxy.pac", "example.com")]
    # no_proxy is applied before the PAC is consulted.
    exempt = select(WS, proxies={"pac": "http://wpad/p", "no_proxy": "example.com"}, trust_env=True, request_proxy=None)
    assert exempt.candidates == (None,) and len(seen) == 1


def test_pac_failure_is_an_error_never_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsclient.proxy import pac

    def broken(*args: Any) -> Any:
        raise ProxyError("cannot fetch the PAC file http://wpad/p")

    monkeypatch.setattr(pac, "resolve_pac", broken)
    with pytest.raises(ProxyError, match="PAC"):
        select(WS, proxies={"pac": "http://wpad/p"}, trust_env=True, request_proxy=None)


def _clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ws_proxy", "wss_proxy", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_os_settings_when_no_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    _clear_proxy_env(monkeypatch)
    # As on Windows/macOS, where urllib reads the OS settings (elsewhere it reads only the
    # environment, which the selection has consulted already).
    monkeypatch.setattr("wsclient.proxy.selection.sys.platform", "darwin")
    monkeypatch.setattr(urllib.request, "getproxies", lambda: {"https": "http://osproxy:8080"})
    monkeypatch.setattr(urllib.request, "proxy_bypass", lambda host: host == "intranet")
    chosen = select(WSS, proxies=None, trust_env=True, request_proxy=None)
    assert chosen.candidates == (ProxyURL("http", "osproxy", 8080),) and chosen.source == "OS proxy settings"
    bypassed = select(parse_uri("wss://intranet"), proxies=None, trust_env=True, request_proxy=None)
    assert bypassed.candidates == (None,) and "bypassed" in bypassed.source
    assert select(WS, proxies=None, trust_env=True, request_proxy=None).candidates == (None,)  # no "http" entry
    # The environment's rules come first, and trust_env=False reads neither.
    monkeypatch.setenv("HTTPS_PROXY", "http://envproxy:1")
    assert select(WSS, proxies=None, trust_env=True, request_proxy=None).proxy == ProxyURL("http", "envproxy", 1)
    assert select(WSS, proxies=None, trust_env=False, request_proxy=None).candidates == (None,)


def test_os_settings_are_not_read_where_urllib_reads_only_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    _clear_proxy_env(monkeypatch)
    monkeypatch.setattr("wsclient.proxy.selection.sys.platform", "linux")
    monkeypatch.setattr(urllib.request, "getproxies", lambda: pytest.fail("getproxies() read on Linux"))
    assert select(WSS, proxies=None, trust_env=True, request_proxy=None).candidates == (None,)
