"""The opening's DNS step is bounded by ``timeout`` like every other step.

The system resolver cannot be made to hang on loopback, so the resolver (a dependency, not
the code under test) is replaced by one that stalls; the rest of the opening is real.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

import wsclient


def test_a_stalled_resolver_ends_in_connect_timeout_within_the_timeout(monkeypatch):
    release = threading.Event()
    real = socket.getaddrinfo

    def stalled(host, *args, **kwargs):
        if host == "stalled.example":
            release.wait(10)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    started = time.monotonic()
    try:
        with pytest.raises(wsclient.ConnectTimeout) as info:
            wsclient.connect("ws://stalled.example:9/", timeout=0.5, proxies={})
        elapsed = time.monotonic() - started
    finally:
        release.set()  # let the resolver thread end (the leak check waits for it)
    assert elapsed < 0.5 + 1.5
    assert "resolving" in str(info.value)


def test_ip_literals_are_not_resolved_on_a_thread(monkeypatch):
    names: list[str] = []
    real_start = threading.Thread.start

    def spy(self):
        names.append(self.name)
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    with pytest.raises(wsclient.ConnectFailed):
        wsclient.connect("ws://127.0.0.1:9/", timeout=2, proxies={})  # port 9: refused
    assert "wsclient-resolve" not in names
