"""A Flask route that sends one message over a WebSocket and returns (docs/workers.md).

Run: FEED_URL=wss://feed.example/ws flask --app flask_app run
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request

import wsclient

app = Flask(__name__)
app.config["FEED_URL"] = os.environ.get("FEED_URL", "wss://feed.example/ws")


@app.post("/notify")
def notify():  # type: ignore[no-untyped-def]
    # One short connection per request: opened, used and closed inside the request, so no
    # thread or socket outlives it (the `with` block closes within close_timeout).
    try:
        with wsclient.connect(app.config["FEED_URL"], timeout=5, close_timeout=2) as ws:
            ws.send(request.get_data(as_text=True))
            reply = ws.recv(timeout=5)
    except wsclient.WebSocketError as exc:  # ConnectFailed, ConnectionClosed, ...
        return jsonify(error=str(exc)), 502
    except TimeoutError:
        return jsonify(error="no reply within 5 s"), 504
    return jsonify(reply=reply)
