"""The CONNECT request (no sockets; the answer is read by wsclient.http11, tests/unit/test_http11.py)."""

from __future__ import annotations

import pytest

from wsclient.proxy.tunnel import ProxyResponse, build_connect_request, connect_authority


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
def test_proxy_header_injection_refused_at_the_edge(headers: dict[str, object]) -> None:
    from wsclient.transport.options import parse_request_options

    with pytest.raises(ValueError):
        parse_request_options(
            {"proxy_headers": headers}, tls_options={}, disable_nagle_algorithm=True, default_timeout=1
        )


def test_request_options_parsed_once_into_typed_options() -> None:
    from wsclient.transport.options import parse_request_options

    opts = parse_request_options(
        {"proxy_headers": {"A": b"v"}, "proxy": "http://u:pw@p:1", "timeout": 3, "socket_options": [(1, 2, 3)]},
        tls_options={"server_hostname": "sni.example"},
        disable_nagle_algorithm=False,
        default_timeout=10,
    )
    assert opts.proxy_headers == (("A", "v"),) and opts.proxy == "http://u:pw@p:1" and opts.timeout == 3
    assert opts.socket_options == ((1, 2, 3),) and opts.server_hostname == "sni.example"
    assert "pw" not in repr(opts)
    with pytest.raises(TypeError, match="'proxy_verfy'"):
        parse_request_options({"proxy_verfy": False}, tls_options={}, disable_nagle_algorithm=True, default_timeout=1)
    with pytest.raises(ValueError, match="'wws'"):
        parse_request_options({"proxies": {"wws": "x"}}, tls_options={}, disable_nagle_algorithm=True, default_timeout=1)


def test_proxy_response_is_the_public_response() -> None:
    import wsclient

    assert ProxyResponse is wsclient.Response
    response = ProxyResponse(407, "Proxy Authentication Required", wsclient.Headers({"A": "b"}), b"x")
    assert response.headers["a"] == "b"
