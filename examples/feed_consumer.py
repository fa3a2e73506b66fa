"""Consume a feed with the requests-style API until the server closes or Ctrl-C.

Run: python examples/feed_consumer.py wss://example.com/feed [subscribe-message]
"""

from __future__ import annotations

import logging
import sys

import wsclient


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    url = argv[1]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        with wsclient.connect(url, timeout=10, ping_interval=20) as ws:
            print(f"connected: subprotocol={ws.subprotocol} extensions={ws.extensions}")
            if len(argv) > 2:
                ws.send(argv[2])
            for message in ws:  # ends quietly when the server closes with 1000/1001
                print(message if isinstance(message, str) else f"<{len(message)} bytes>")
    except wsclient.ConnectFailed as exc:
        print(f"could not connect: {exc} (try: wsclient --diagnose {url})", file=sys.stderr)
        return 1
    except wsclient.ConnectionClosedError as exc:
        print(f"connection lost: code {exc.code} {exc.reason}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
