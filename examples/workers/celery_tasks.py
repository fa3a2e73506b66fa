"""A Celery task that talks over a WebSocket; its failures reach the caller intact
(docs/workers.md).

wsclient's exceptions pickle with their attributes, so with the pickle result serializer
``result.get()`` re-raises the worker's ``InvalidStatus`` with ``.response.status``,
``.headers`` and ``.body``.
"""

from __future__ import annotations

import os

from celery import Celery

import wsclient

app = Celery("feeds")
app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"),
    result_backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379/1"),
    # Pickle keeps exception attributes across the process boundary; only accept it from a
    # broker you trust (anyone who can write to it can run code in the worker).
    task_serializer="pickle",
    result_serializer="pickle",
    accept_content=["pickle", "json"],
)


@app.task
def push(url: str, text: str) -> str:
    """Send ``text`` and return the first reply."""
    with wsclient.connect(url, timeout=5, close_timeout=2) as ws:
        ws.send(text)
        reply = ws.recv(timeout=5)
    return reply if isinstance(reply, str) else reply.hex()
