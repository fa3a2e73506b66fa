"""The inbox on its own: no socket, threads only where a wait is the point."""

from __future__ import annotations

import threading
import time

import pytest

from wsclient.inbox import FAILURE, Inbox, InboxClosed


def _in_thread(fn: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def target() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_messages_come_out_in_order() -> None:
    inbox = Inbox(8)
    inbox.put(["a", b"b"], wait=False)
    inbox.put(["c"], wait=False)
    assert [inbox.get_nowait(), inbox.get(0), inbox.get(0)] == ["a", b"b", "c"]
    assert inbox.get_nowait() is None


def test_get_times_out() -> None:
    inbox = Inbox(8)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        inbox.get(0.1)
    assert 0.09 <= time.monotonic() - start < 1.5
    with pytest.raises(TimeoutError):
        inbox.get(0)


def test_a_waiting_getter_is_woken_by_put() -> None:
    inbox = Inbox(8)
    thread, out = _in_thread(lambda: inbox.get(5))
    time.sleep(0.05)
    inbox.put(["hello"], wait=False)
    thread.join(2)
    assert out == ["hello"]


def test_close_lets_getters_drain_then_raises() -> None:
    inbox = Inbox(8)
    inbox.put(["last"], wait=False)
    inbox.close()
    assert inbox.closed
    assert inbox.get(0) == "last"
    with pytest.raises(InboxClosed):
        inbox.get(5)


def test_close_wakes_a_waiting_getter() -> None:
    inbox = Inbox(8)
    thread, out = _in_thread(lambda: inbox.get(None))
    time.sleep(0.05)
    inbox.close()
    thread.join(2)
    assert not thread.is_alive()
    assert isinstance(out[0], InboxClosed)


def test_put_waits_while_full_and_resumes_when_a_consumer_makes_room() -> None:
    inbox = Inbox(2)
    thread, out = _in_thread(lambda: inbox.put(["a", "b"]))
    time.sleep(0.1)
    assert thread.is_alive()  # full: the putter waits (back-pressure)
    assert inbox.get_nowait() == "a"
    thread.join(2)
    assert not thread.is_alive()
    assert out == [None]


def test_put_without_wait_never_blocks() -> None:
    inbox = Inbox(1)
    inbox.put(["a", "b", "c"], wait=False)
    assert len(inbox) == 3


@pytest.mark.parametrize("end", ["release", "close"])
def test_release_and_close_end_a_waiting_put(end: str) -> None:
    inbox = Inbox(1)
    thread, _ = _in_thread(lambda: inbox.put(["a", "b"]))
    time.sleep(0.05)
    assert thread.is_alive()
    getattr(inbox, end)()
    thread.join(2)
    assert not thread.is_alive()
    # Released for good: later puts never wait again (data after our close is dropped
    # before it gets here, so the queue stays bounded).
    inbox.put(["c"])
    assert len(inbox) == 3


def test_pause_blocks_the_reader_until_resume() -> None:
    inbox = Inbox(4)
    inbox.pause()
    assert inbox.paused
    thread, _ = _in_thread(inbox.wait_resumed)
    time.sleep(0.05)
    assert thread.is_alive()
    inbox.resume()
    thread.join(2)
    assert not thread.is_alive()
    inbox.wait_resumed()  # not paused: returns at once


def test_release_ends_a_pause_wait() -> None:
    inbox = Inbox(4)
    inbox.pause()
    thread, _ = _in_thread(inbox.wait_resumed)
    time.sleep(0.05)
    inbox.release()
    thread.join(2)
    assert not thread.is_alive()


def test_failure_marker_follows_the_messages_before_it() -> None:
    inbox = Inbox(2)
    inbox.put(["a", "b"], wait=False)
    inbox.put_failure()  # never waits, even when full
    assert [inbox.get(0), inbox.get(0), inbox.get(0)] == ["a", "b", FAILURE]
    assert repr(FAILURE) == "<inbox.FAILURE>"


def test_has_getters() -> None:
    inbox = Inbox(2)
    assert not inbox.has_getters
    thread, _ = _in_thread(lambda: inbox.get(5))
    deadline = time.monotonic() + 2
    while not inbox.has_getters and time.monotonic() < deadline:
        time.sleep(0.005)
    assert inbox.has_getters
    inbox.put(["x"], wait=False)
    thread.join(2)
    assert not inbox.has_getters


def test_a_waiting_putter_is_woken_once_not_per_message() -> None:
    inbox = Inbox(4)
    thread, out = _in_thread(lambda: inbox.put([str(i) for i in range(10)]))
    deadline = time.monotonic() + 5
    while not inbox._putter_waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    assert inbox._putter_waiting
    wakes = 0
    real_notify_all = inbox._cond.notify_all

    def counting_notify_all() -> None:
        nonlocal wakes
        wakes += 1
        real_notify_all()

    inbox._cond.notify_all = counting_notify_all  # type: ignore[method-assign]
    got = [inbox.get_nowait() for _ in range(10)]
    assert got == [str(i) for i in range(10)]
    thread.join(5)
    assert out == [None]
    # Room appeared at the 7th message; the later ones must not wake the putter again
    # (it may not have run yet: each extra wake cost a lock round per message).
    assert wakes == 1
