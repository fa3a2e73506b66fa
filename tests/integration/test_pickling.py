"""Every exception class pickles and copies with its attributes, as the library raises it.

Each exception here comes from a real failure (a pytest-httpserver 403, a websockets server
closing with 1011, a scripted peer breaking the protocol, ...), then goes through pickle,
``copy.copy``, ``copy.deepcopy`` and a ``ProcessPoolExecutor`` (a real process boundary).
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from rawserver import Op, build_frame, read_request, send, wait_eof

import wsclient
from wsclient import (
    ConnectFailed,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectTimeout,
    HandshakeError,
    InvalidStatus,
    InvalidURL,
    ProtocolError,
    ProxyAuthenticationRequired,
    ProxyError,
    TLSError,
    WebSocketError,
)
from wsclient.exceptions import PayloadTooBig


def _raised(fn: Callable[[], Any], kind: type[BaseException]) -> Any:
    with pytest.raises(kind) as info:
        fn()
    assert type(info.value) is kind, f"expected exactly {kind.__name__}, got {type(info.value).__name__}"
    return info.value


def _attrs(exc: BaseException) -> dict[str, Any]:
    """What must survive: the message, the class, code/reason, the response's fields."""
    out: dict[str, Any] = {"type": type(exc), "str": str(exc), "args": exc.args}
    for name in ("code", "reason"):
        if hasattr(exc, name):
            out[name] = getattr(exc, name)
    response = getattr(exc, "response", None)
    if response is not None:
        out["response"] = (
            response.status,
            response.reason,
            list(response.headers.items()),
            response.body,
        )
    return out


def _round_trips(exc: BaseException) -> None:
    expected = _attrs(exc)
    for clone in (
        pickle.loads(pickle.dumps(exc)),
        pickle.loads(pickle.dumps(exc, protocol=2)),
        copy.copy(exc),
        copy.deepcopy(exc),
    ):
        assert _attrs(clone) == expected
        assert isinstance(clone, WebSocketError)


# --------------------------------------------------------------------------- real failures


def _invalid_status(httpserver: Any) -> InvalidStatus:
    httpserver.expect_request("/deny").respond_with_data(
        "denied: token expired", status=403, headers={"X-Reason": "expired"}
    )
    return _raised(
        lambda: wsclient.connect(httpserver.url_for("/deny").replace("http://", "ws://"), timeout=5),
        InvalidStatus,
    )


def test_invalid_status_from_a_real_403(httpserver: Any) -> None:
    exc = _invalid_status(httpserver)
    _round_trips(exc)
    clone = pickle.loads(pickle.dumps(exc))
    assert clone.response.status == 403
    assert clone.response.headers["x-reason"] == "expired"
    assert clone.response.body == b"denied: token expired"


def test_connection_closed_error_from_a_real_close(websockets_server: Any) -> None:
    with wsclient.connect(websockets_server.url("/close", code=1011, reason="overloaded"), timeout=5) as ws:
        exc = _raised(lambda: [m for m in ws], ConnectionClosedError)
    assert (exc.code, exc.reason) == (1011, "overloaded")
    _round_trips(exc)


def test_connection_closed_ok_from_a_real_close(websockets_server: Any) -> None:
    ws = wsclient.connect(websockets_server.url("/echo"), timeout=5)
    ws.close()
    exc = _raised(lambda: ws.send("late"), ConnectionClosedOK)
    assert exc.code == 1000
    _round_trips(exc)


def test_invalid_url() -> None:
    _round_trips(_raised(lambda: wsclient.connect("http://example.com/"), InvalidURL))


def test_connect_failed_refused(refused_port: int) -> None:
    _round_trips(_raised(lambda: wsclient.connect(f"ws://127.0.0.1:{refused_port}/", timeout=5), ConnectFailed))


def test_connect_timeout(raw_server: Any) -> None:
    server = raw_server([read_request(), wait_eof(5)], handshake=False)
    exc = _raised(lambda: wsclient.connect(server.url(), timeout=0.3), ConnectTimeout)
    _round_trips(exc)
    assert isinstance(pickle.loads(pickle.dumps(exc)), TimeoutError)
    server.join()


def test_tls_error(websockets_tls_server: Any, other_ca_path: str) -> None:
    exc = _raised(lambda: wsclient.connect(websockets_tls_server.url(), verify=other_ca_path, timeout=5), TLSError)
    _round_trips(exc)


def test_handshake_error(raw_server: Any) -> None:
    server = raw_server([wait_eof(required=False)], accept="dGhlIHNhbXBsZSBub25jZQ==")
    _round_trips(_raised(lambda: wsclient.connect(server.url(), timeout=5), HandshakeError))
    server.join()


def test_negotiation_error(raw_server: Any) -> None:
    """A 101 whose permessage-deflate answer breaks RFC 7692 (a window size out of range)."""
    server = raw_server(
        [wait_eof(required=False)],
        extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=20")],
    )
    exc = _raised(lambda: wsclient.connect(server.url(), timeout=5), wsclient.NegotiationError)
    _round_trips(exc)
    server.join()


def _proxy_answering(answer: bytes) -> tuple[int, threading.Thread, socket.socket]:
    """A one-shot HTTP proxy that reads a CONNECT and sends ``answer``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


def test_proxy_error_and_its_response() -> None:
    port, thread, listener = _proxy_answering(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
    )
    try:
        exc = _raised(
            lambda: wsclient.connect("ws://127.0.0.1:9/", proxies={"all": f"http://127.0.0.1:{port}"}, timeout=5),
            ProxyError,
        )
    finally:
        thread.join(5)
        listener.close()
    assert exc.response is not None and exc.response.status == 502
    _round_trips(exc)


def test_proxy_authentication_required() -> None:
    port, thread, listener = _proxy_answering(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"r\"\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    try:
        exc = _raised(
            lambda: wsclient.connect("ws://127.0.0.1:9/", proxies={"all": f"http://127.0.0.1:{port}"}, timeout=5),
            ProxyAuthenticationRequired,
        )
    finally:
        thread.join(5)
        listener.close()
    assert exc.response.status == 407
    _round_trips(exc)


def _error_event(raw_server: Any, frame: bytes, **config: Any) -> Any:
    """The exception a connection reports on its ``error`` event for a bad frame."""
    server = raw_server([send(frame), wait_eof(5, required=False)])
    errors: list[BaseException] = []
    got = threading.Event()
    ws = wsclient.connect(server.url(), timeout=5, close_timeout=1, **config)
    ws.on("error", lambda e: (errors.append(e), got.set()))
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    ws.close()
    server.join()
    assert got.wait(2), "no error event"
    return errors[0]


def test_protocol_error_from_a_masked_frame(raw_server: Any) -> None:
    exc = _error_event(raw_server, build_frame(Op.TEXT, "masked", mask=True))
    assert type(exc) is ProtocolError and exc.code == 1002
    _round_trips(exc)


def test_payload_too_big(raw_server: Any) -> None:
    exc = _error_event(raw_server, build_frame(Op.BINARY, b"x" * 2048), max_received_frame_size=1024)
    assert type(exc) is PayloadTooBig and exc.code == 1009
    _round_trips(exc)


def test_the_base_classes() -> None:
    """WebSocketError and the abstract ConnectionClosed as a caller may raise them."""
    _round_trips(WebSocketError("base"))
    _round_trips(ConnectionClosed(1006, "", "gone"))
    _round_trips(ProxyError("no response attribute set"))


def test_every_exported_exception_class_is_covered() -> None:
    """A new exception class must be added to the real-failure tests above."""
    covered = {
        ConnectFailed, ConnectTimeout, ConnectionClosed, ConnectionClosedError, ConnectionClosedOK,
        HandshakeError, InvalidStatus, InvalidURL, ProtocolError, ProxyAuthenticationRequired,
        ProxyError, TLSError, WebSocketError, PayloadTooBig, wsclient.NegotiationError,
    }
    exported = {
        obj for name in wsclient.__all__
        if isinstance(obj := getattr(wsclient, name), type) and issubclass(obj, WebSocketError)
    }
    assert exported <= covered


# --------------------------------------------------------------------------- a process boundary


def _connect_in_worker(url: str) -> None:
    """Runs in the pool's process: the exception travels back pickled."""
    wsclient.connect(url, timeout=5)


def test_invalid_status_crosses_a_process_pool(httpserver: Any) -> None:
    httpserver.expect_request("/deny").respond_with_data("denied", status=403, headers={"Retry-After": "7"})
    url = httpserver.url_for("/deny").replace("http://", "ws://")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_connect_in_worker, url)
        with pytest.raises(InvalidStatus) as info:
            future.result(timeout=60)
    exc = info.value
    assert exc.response.status == 403
    assert exc.response.headers["retry-after"] == "7"
    assert exc.response.body == b"denied"
    assert "403" in str(exc)


def test_connection_closed_crosses_a_process_pool(websockets_server: Any) -> None:
    url = websockets_server.url("/close", code=1011, reason="overloaded")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_iterate_in_worker, url)
        with pytest.raises(ConnectionClosedError) as info:
            future.result(timeout=60)
    assert (info.value.code, info.value.reason) == (1011, "overloaded")


def _iterate_in_worker(url: str) -> None:
    with wsclient.connect(url, timeout=5) as ws:
        for _ in ws:
            pass

