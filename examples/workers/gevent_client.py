"""wsclient under gevent: patch first, then use it as usual (docs/workers.md).

Run: python gevent_client.py ws://127.0.0.1:8765/echo
"""

from gevent import monkey

monkey.patch_all()  # before anything imports socket, ssl or threading

import sys  # noqa: E402

import gevent  # noqa: E402

import wsclient  # noqa: E402


def round_trip(url: str, text: str) -> str:
    with wsclient.connect(url, timeout=5, close_timeout=2) as ws:
        ws.send(text)
        reply = ws.recv(timeout=5)
    assert isinstance(reply, str)
    return reply


if __name__ == "__main__":
    # Several connections at once, each in its own greenlet.
    jobs = [gevent.spawn(round_trip, sys.argv[1], f"hello {i}") for i in range(3)]
    gevent.joinall(jobs, timeout=20, raise_error=True)
    print(" | ".join(job.value for job in jobs), flush=True)
