"""The bounds of close() and drop() through the proxy stream wrappers: a wss target behind an
https:// proxy (TLS inside TLS) whose far end stops reading while senders are blocked."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from proxypeers import PPROXY_PASSWORD, USER
from rawserver import wait

import wsclient

SLACK = 1.5
CLOSE_TIMEOUT = 1.0


def _sender(ws: Any, errors: list[BaseException]) -> None:
    payload = b"x" * (1 << 20)
    try:
        while True:
            ws.send(payload)
    except BaseException as exc:  # recorded for the test
        errors.append(exc)


@pytest.mark.parametrize("end", ["close", "drop"])
def test_blocked_senders_through_tls_in_tls_are_ended(
    raw_server: Any, server_tls: Any, ca_path: str, pproxy: Any, proxy_tls: Any, end: str
) -> None:
    release = threading.Event()
    server = raw_server([wait(release, 60)], recv_buffer=4096, ssl_context=server_tls.server_context)
    try:
        ws = wsclient.connect(
            server.url(),
            proxies={"wss": pproxy.url_for("https", "https", USER, PPROXY_PASSWORD)},
            verify=ca_path,
            request_options={"proxy_verify": proxy_tls.ca_path},
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
        )
        assert type(ws._sock).__name__ == "TLSInTLSStream"
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_sender, args=(ws, errors), daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the proxy's and the sockets' buffers fill up
        assert all(t.is_alive() for t in threads), "a sender ended before the buffers filled"
        start = time.monotonic()
        getattr(ws, end)()
        elapsed = time.monotonic() - start
        assert elapsed < (CLOSE_TIMEOUT if end == "close" else 0) + SLACK
        for thread in threads:
            thread.join(SLACK)
            assert not thread.is_alive(), f"a blocked sender was not ended by {end}()"
        assert len(errors) == 2
        assert all(isinstance(e, wsclient.ConnectionClosed) for e in errors), errors
    finally:
        release.set()
