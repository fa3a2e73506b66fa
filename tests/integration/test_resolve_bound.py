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


@pytest.fixture
def stalled_resolver(monkeypatch):
    """``stalled.example`` takes 10 s to resolve (any other name is 127.0.0.1)."""
    release = threading.Event()
    real = socket.getaddrinfo

    def stalled(host, *args, **kwargs):
        if host == "stalled.example":
            release.wait(10)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    yield
    release.set()  # let the resolver thread end (the leak check waits for it)


def _connect_times_out_resolving(url, **kwargs):
    started = time.monotonic()
    with pytest.raises(wsclient.ConnectTimeout) as info:
        wsclient.connect(url, timeout=0.5, **kwargs)
    assert time.monotonic() - started < 0.5 + 1.5
    assert "resolving" in str(info.value)


def test_a_stalled_resolver_ends_in_connect_timeout_within_the_timeout(stalled_resolver):
    _connect_times_out_resolving("ws://stalled.example:9/", proxies={})


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


@pytest.mark.parametrize(
    ("url", "proxy"),
    [
        # The SOCKS proxy's own name does not resolve in time.
        ("ws://127.0.0.1:9/", "socks5://stalled.example:1080"),
        # SOCKS4 carries an IPv4 address: the target's name is resolved here.
        ("ws://stalled.example:9/", "socks4://127.0.0.1:9"),
    ],
    ids=["socks-proxy-name", "socks4-target-name"],
)
def test_a_stalled_resolver_behind_a_socks_proxy_is_bounded_too(stalled_resolver, url, proxy):
    _connect_times_out_resolving(url, proxies={"ws": proxy})
