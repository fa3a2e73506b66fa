from __future__ import annotations

import pytest

from wsclient import InvalidURL
from wsclient.uri import parse_uri


def test_defaults() -> None:
    u = parse_uri("ws://Example.com")
    assert (u.secure, u.host, u.port, u.resource) == (False, "example.com", 80, "/")
    assert u.host_header == "example.com"
    s = parse_uri("wss://example.com:8443/a/b?x=1")
    assert (s.secure, s.port, s.resource, s.host_header) == (True, 8443, "/a/b?x=1", "example.com:8443")


def test_ipv6_and_idna() -> None:
    u = parse_uri("ws://[::1]:9000/")
    assert u.host == "::1" and u.host_header == "[::1]:9000" and u.authority == "[::1]:9000"
    assert parse_uri("ws://bücher.example/").host == "xn--bcher-kva.example"


def test_user_info() -> None:
    u = parse_uri("ws://user:p%40ss@host/")
    assert u.user_info == ("user", "p@ss")


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "example.com", "ws://", "ws://host:99999/", "ws://host/#frag", "ws://ho st/",
     "ws://host/\r\nX: y", 42, "ws://host:0/"],
)
def test_invalid(url: object) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_uri(url)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_parsed_urls_are_shared_but_credentials_never_cached() -> None:
    from wsclient import uri as uri_module

    assert parse_uri("ws://cache.example/a") is parse_uri("ws://cache.example/a")
    before = uri_module._parse_cached.cache_info().currsize
    secret = parse_uri("ws://user:s3cret@cache.example/")
    assert secret.user_info == ("user", "s3cret")
    assert uri_module._parse_cached.cache_info().currsize == before
    # A failure is raised every time, never remembered as a result.
    for _ in range(2):
        with pytest.raises(InvalidURL):
            parse_uri("http://cache.example/")
