"""A short demo of wsclient against a local echo server that this script starts itself.

Run: python examples/demo.py
"""

from __future__ import annotations

import threading

import wsclient

try:
    from websockets.sync.server import serve
except ImportError:  # pragma: no cover
    raise SystemExit("the demo's echo server needs the websockets package: pip install websockets")


def echo(ws) -> None:  # type: ignore[no-untyped-def]
    for message in ws:
        ws.send(message)


def main() -> None:
    with serve(echo, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{port}/"

        # The requests-style front door.
        with wsclient.connect(url) as ws:
            print(f"connected to {url}; negotiated extensions: {ws.extensions}")
            ws.send("hello, wsclient")
            print("text echo  :", ws.recv(timeout=5))
            ws.send(bytes(range(8)))
            print("binary echo:", ws.recv(timeout=5))
            ws.send("é" * 100_000)
            print("large echo :", len(ws.recv(timeout=5)), "characters")
        print("closed with code", ws.close_code)

        # The event-style WebSocketClient of WebSocket-Node.
        client = wsclient.WebSocketClient(close_timeout=2.0)
        done = threading.Event()

        @client.on("connect")
        def opened(connection: wsclient.WebSocketConnection) -> None:
            connection.on("message", lambda data: (print("event echo :", data), done.set()))
            connection.send_text("hello from an event listener")

        conn = client.connect(url)
        assert conn is not None
        done.wait(5)
        conn.close()
        server.shutdown()


if __name__ == "__main__":
    main()
