"""send_many(): several messages in as few writes as possible, in order, never interleaved
with another thread's messages, all written before it returns."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import wsclient
from wsclient import ConnectionClosed


def test_a_batch_arrives_in_order_with_text_binary_and_fragmented_items(peer: Any) -> None:
    big = bytes(range(256)) * 400  # 100 KiB: fragmented at the default 16 KiB threshold
    batch: list[Any] = [f"t{i}" if i % 3 else f"b{i}".encode() for i in range(300)]
    batch[150] = big
    batch[151] = "é" * 40_000  # a fragmented text message, split inside characters
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        ws.send_many(iter(batch))  # any iterable
        got = [ws.recv(timeout=10) for _ in batch]
    assert got == batch


def test_batches_from_several_threads_never_interleave(peer: Any) -> None:
    threads_count, batches, size = 4, 5, 40
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        barrier = threading.Barrier(threads_count)
        errors: list[BaseException] = []

        def publisher(t: int) -> None:
            try:
                barrier.wait(5)
                for b in range(batches):
                    ws.send_many(f"{t}:{b}:{i}" for i in range(size))
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=publisher, args=(t,), name=f"test-publisher-{t}") for t in range(threads_count)]
        for w in workers:
            w.start()
        got = [ws.recv(timeout=10) for _ in range(threads_count * batches * size)]
        for w in workers:
            w.join(10)
        assert not errors
    # Every batch is one contiguous run of its own messages, in order.
    for start in range(0, len(got), size):
        run = got[start : start + size]
        assert isinstance(run[0], str)
        t, b, _ = run[0].split(":")
        assert run == [f"{t}:{b}:{i}" for i in range(size)], "a batch was interleaved"


def test_everything_is_written_before_close(peer: Any) -> None:
    """close() right after send_many(): the server sees every message, then the close."""
    url = peer.url("/echo")
    ws = wsclient.connect(url, **peer.client_kwargs)
    ws.send_many([f"m{i}" for i in range(1000)])
    ws.close()
    assert ws.close_code == 1000
    peer.wait_event("close", url)


def test_a_bad_item_sends_nothing(peer: Any) -> None:
    with wsclient.connect(peer.url("/echo"), **peer.client_kwargs) as ws:
        with pytest.raises(TypeError, match="int"):
            ws.send_many(["first", 2, "third"])
        ws.send("after")
        assert ws.recv(timeout=5) == "after"  # "first" never went out


def test_empty_batch_and_closed_connection(peer: Any) -> None:
    ws = wsclient.connect(peer.url("/echo"), **peer.client_kwargs)
    ws.send_many([])
    ws.close()
    with pytest.raises(ConnectionClosed):
        ws.send_many(["late"])
