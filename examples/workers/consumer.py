"""A long-lived consumer: reconnects with backoff, stops cleanly on SIGTERM (docs/workers.md).

Run: python consumer.py wss://feed.example/ws
"""

from __future__ import annotations

import logging
import signal
import sys

import wsclient

log = logging.getLogger("consumer")


def handle(message: str | bytes) -> None:
    print(f"got {message!r}", flush=True)


def main(url: str) -> int:
    feed = wsclient.reconnect(url, timeout=10, close_timeout=3)

    def on_sigterm(signum: int, frame: object) -> None:
        # stop() only sets a flag and starts the close on a helper thread: safe in a
        # signal handler, even while this thread is blocked in the `for message` below.
        log.info("SIGTERM: closing")
        feed.stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    for ws in feed:
        with ws:
            print("connected", flush=True)
            ws.send("subscribe")
            try:
                for message in ws:  # ends quietly on a 1000/1001 close (stop() sends 1001)
                    handle(message)
            except wsclient.ConnectionClosedError as exc:
                log.warning("connection lost (%s); reconnecting", exc.code)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1]))
