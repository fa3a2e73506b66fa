"""A followed redirect chooses the proxy again for its new host (issue 9)."""

from __future__ import annotations

import time
from typing import Any

import wsclient


def test_the_proxy_is_chosen_again_for_each_hop(httpserver: Any, squid_open: Any, ws_target: Any) -> None:
    path = f"/redirected-{time.monotonic_ns()}"
    httpserver.expect_request("/a").respond_with_data(
        "moved", status=307, headers={"Location": ws_target.url(path)}
    )
    first_hop = httpserver.url_for("/a").replace("http://", "ws://")
    proxies = {
        "ws": squid_open.url("http"),
        # The first hop is exempt (direct); the second, on another port, goes through squid.
        "no_proxy": f"127.0.0.1:{httpserver.port}",
    }
    with wsclient.connect(first_hop, proxies=proxies, follow_redirects=True, timeout=10) as ws:
        ws.send("after a redirect")
        assert ws.recv(timeout=10) == "after a redirect"
        assert tuple(ws.remote_address[:2]) == tuple(squid_open.address)
    assert len([r for r, _ in httpserver.log if r.path == "/a"]) == 1
    assert ws_target.find(path) is not None
