"""wsclient: a synchronous, threaded WebSocket client with a requests-style API.

>>> import wsclient
>>> with wsclient.connect("ws://127.0.0.1:8765/") as ws:  # doctest: +SKIP
...     ws.send("hello")
...     print(ws.recv(timeout=5))
"""

from __future__ import annotations

import logging

from .api import connect
from .client import WebSocketClient
from .config import ClientConfig
from .connection import WebSocketConnection
from .exceptions import (
    ConnectFailed,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectTimeout,
    HandshakeError,
    InvalidStatus,
    InvalidURL,
    PayloadTooBig,
    ProtocolError,
    ProxyAuthenticationRequired,
    ProxyError,
    TLSError,
    WebSocketError,
)
from .extensions.permessage_deflate import DeflateOptions, NegotiationError
from .frames import CloseCode, Frame, Opcode
from .handshake import Headers, Response
from .reconnect import Backoff, Reconnect, reconnect

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "ClientConfig",
    "CloseCode",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DeflateOptions",
    "Frame",
    "HandshakeError",
    "Headers",
    "InvalidStatus",
    "InvalidURL",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyAuthenticationRequired",
    "ProxyError",
    "Reconnect",
    "Response",
    "TLSError",
    "WebSocketClient",
    "WebSocketConnection",
    "WebSocketError",
    "__version__",
    "connect",
    "reconnect",
]

logging.getLogger("wsclient").addHandler(logging.NullHandler())
