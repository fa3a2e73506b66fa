"""Loopback peers for the integration tests.

Fixtures:

* ``websockets_server`` / ``websockets_tls_server``: the ``websockets`` package's sync
  server on a background thread (ws and wss), speaking the *path language* below.
* ``node_server`` / ``node_tls_server``: Node's ``ws`` server (``tests/node/server.js``)
  as a subprocess, same path language. Node or the ``ws`` module missing: the tests
  fail when ``CI`` is set, and are skipped otherwise.
* ``peer``: parametrized over the four servers above, for tests that must pass on each.
* ``websockets_server_factory`` / ``node_server_factory``: servers with other options
  (a custom handler, another certificate, deflate, no automatic pong, ...).
* ``tls_ca``, ``ca_path``, ``other_ca_path``: trustme CAs; the server certificate is for
  ``127.0.0.1``, ``localhost`` and ``::1``. Pass ``verify=ca_path`` to the client.
* ``raw_server``: a factory of :class:`rawserver.RawServer` (scripted raw-socket peer).
* ``httpserver`` (pytest-httpserver) bound to ``127.0.0.1``, for non-101 answers.
* ``refused_port``: a loopback port nothing listens on.

The path language (both real servers):

``/echo``
    echo every message with its type. These texts are commands instead: ``"pongs?"`` /
    ``"pings?"`` are answered with a JSON list of the pong / ping payloads (hex) the server
    received on this connection; ``"ping:<data>"`` makes the server send a ping carrying
    ``<data>``; ``"close:<code>:<reason>"`` makes it close with that code and reason.
``/headers``
    first a JSON text ``{"path", "headers", "protocol"}`` (header names lower case), then echo.
``/close?code=C&reason=R&count=N``
    N text messages ``"message <i>"``, then a close with C and R (no ``code``: an empty close).
``/ping?data=D``
    a ping carrying D right after the opening, then echo.
``/flood?count=N&size=S``
    N binary messages of S bytes (4-byte big-endian index first), then close 1000. The
    websockets server counts what it sent in ``server.flood_sent[cid]``.

Every URL made by ``server.url()`` carries a unique ``cid`` query parameter; the servers
record events (``connection``, ``ping``, ``pong``, ``close`` with ``code``/``reason``) in
``server.events`` tagged with it, and ``server.wait_event(kind, url)`` waits for one.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that test modules can `import rawserver` in any import mode
    sys.path.insert(0, str(HERE))

from rawserver import RawServer  # noqa: E402

NODE_DIR = HERE.parent / "node"
NODE_SERVER = NODE_DIR / "server.js"

#: Subprotocols both real servers support, best first.
SERVER_SUBPROTOCOLS = ("superchat", "chat")

_cids = itertools.count(1)


# --------------------------------------------------------------------------- events


class EventLog:
    """A thread-safe list of event records (dicts with at least ``event`` and ``cid``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        """Append a record and wake the waiters."""
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()

    def records(self, event: str | None = None, cid: str | None = None) -> list[dict[str, Any]]:
        """The records so far, filtered by kind and connection."""
        with self._cond:
            return [
                r
                for r in self._records
                if (event is None or r.get("event") == event) and (cid is None or r.get("cid") == cid)
            ]

    def wait_for(
        self,
        event: str,
        cid: str | None = None,
        *,
        timeout: float = 5.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait for a matching record and return it; ``AssertionError`` on timeout."""

        def find() -> dict[str, Any] | None:
            for r in self._records:
                if r.get("event") != event or (cid is not None and r.get("cid") != cid):
                    continue
                if predicate is None or predicate(r):
                    return r
            return None

        with self._cond:
            found = self._cond.wait_for(find, timeout)
            if found is None:
                seen = [r for r in self._records if cid is None or r.get("cid") == cid]
                raise AssertionError(f"no {event!r} event for cid {cid} within {timeout}s; saw {seen!r}")
            return found


def cid_of(url: str) -> str:
    """The ``cid`` query parameter of a URL made by ``server.url()``."""
    values = parse_qs(urlsplit(url).query).get("cid")
    if not values:
        raise ValueError(f"{url!r} has no cid")
    return values[0]


class _PeerBase:
    """What the tests use of any real server: URLs, client options, recorded events."""

    name: str
    scheme: str
    host: str
    port: int
    ca_path: str | None
    events: EventLog

    def url(self, path: str = "/echo", **params: object) -> str:
        """A URL of this server with a fresh ``cid`` (plus ``params``) in its query."""
        query = {"cid": f"c{next(_cids)}", **{k: str(v) for k, v in params.items()}}
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}?{urlencode(query)}"

    @property
    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``wsclient.connect`` that reach this server."""
        kwargs: dict[str, Any] = {"close_timeout": 3.0}
        if self.scheme == "wss":
            kwargs["verify"] = self.ca_path
        return kwargs

    def wait_event(
        self,
        event: str,
        url: str,
        *,
        timeout: float = 5.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait for the server to record ``event`` on the connection opened with ``url``."""
        return self.events.wait_for(event, cid_of(url), timeout=timeout, predicate=predicate)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.scheme}://{self.host}:{self.port}>"


# --------------------------------------------------------------------------- TLS


@dataclass
class TLSFiles:
    """PEM files of one CA and one server certificate it issued."""

    ca_path: str
    cert_path: str
    key_path: str
    chain_path: str
    server_context: Any = field(repr=False)


def _issue(ca: Any, directory: Path, stem: str, *hosts: str) -> TLSFiles:
    import ssl

    cert = ca.issue_cert(*hosts)
    ca_path = directory / f"{stem}-ca.pem"
    cert_path = directory / f"{stem}-cert.pem"
    key_path = directory / f"{stem}-key.pem"
    chain_path = directory / f"{stem}-chain.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    with open(chain_path, "wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return TLSFiles(str(ca_path), str(cert_path), str(key_path), str(chain_path), context)


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder for certificate files."""
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def tls_ca() -> Any:
    """The trustme CA that signs the test servers' certificates."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(tls_ca: Any, tls_dir: Path) -> TLSFiles:
    """A server certificate for 127.0.0.1, localhost and ::1, with its CA file."""
    return _issue(tls_ca, tls_dir, "server", "127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def ca_path(server_tls: TLSFiles) -> str:
    """Path of the CA file to pass as ``verify=`` to reach the wss servers."""
    return server_tls.ca_path


@pytest.fixture(scope="session")
def wrong_host_tls(tls_ca: Any, tls_dir: Path) -> TLSFiles:
    """A certificate from the trusted CA, but for ``wrong.example`` only."""
    return _issue(tls_ca, tls_dir, "wronghost", "wrong.example")


@pytest.fixture(scope="session")
def other_ca_path(tls_dir: Path) -> str:
    """A CA file that did not sign any test server's certificate."""
    trustme = pytest.importorskip("trustme")
    other = trustme.CA()
    path = tls_dir / "other-ca.pem"
    other.cert_pem.write_to_path(str(path))
    return str(path)


# --------------------------------------------------------------------------- websockets server


def _websockets_path_handler(server: WebsocketsPeer, ws: Any) -> None:
    """The path language, on a websockets ServerConnection."""
    from websockets.exceptions import ConnectionClosed as WSClosed

    split = urlsplit(ws.request.path)
    params = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    cid = params.get("cid")
    headers: dict[str, str] = {}
    for name, value in ws.request.headers.raw_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    info = {"path": ws.request.path, "headers": headers, "protocol": ws.subprotocol}
    server.events.add({"event": "connection", "cid": cid, **info})
    try:
        if split.path == "/headers":
            ws.send(json.dumps(info))
        elif split.path == "/close":
            for i in range(int(params.get("count", "0"))):
                ws.send(f"message {i}")
            code = params.get("code")
            if code is None:
                ws.close(code=None)  # type: ignore[arg-type]  # an empty close frame
            else:
                ws.close(int(code), params.get("reason", ""))
            return
        elif split.path == "/ping":
            ws.ping(params.get("data", "").encode("utf-8"))
        elif split.path == "/flood":
            count = int(params.get("count", "100"))
            size = int(params.get("size", "65536"))
            for i in range(count):
                payload = bytearray([i % 251]) * size
                payload[:4] = i.to_bytes(4, "big")
                ws.send(bytes(payload))
                server.flood_sent[cid or ""] = i + 1
            ws.close(1000, "flood done")
            return
        for message in ws:
            if message == "pongs?":
                ws.send(json.dumps(ws.wsc_pongs))
            elif message == "pings?":
                ws.send(json.dumps(ws.wsc_pings))
            elif isinstance(message, str) and message.startswith("ping:"):
                ws.ping(message[5:].encode("utf-8"))
            elif isinstance(message, str) and message.startswith("close:"):
                code, _, reason = message[6:].partition(":")
                ws.close(int(code), reason)
            else:
                ws.send(message)
    except WSClosed:
        pass
    finally:
        server.events.add({"event": "close", "cid": cid, "code": ws.close_code, "reason": ws.close_reason})


class WebsocketsPeer(_PeerBase):
    """The ``websockets`` package's sync server on a background thread.

    Args:
        handler: ``handler(peer, connection)``; default: the path language.
        tls: certificate files for wss (None: ws).
        host: ``127.0.0.1`` or ``::1``.
        ca_path: the CA file clients should verify with (defaults to ``tls.ca_path``).
        **serve_kwargs: passed on to ``websockets.sync.server.serve``.
    """

    name = "websockets"

    def __init__(
        self,
        handler: Callable[[WebsocketsPeer, Any], None] | None = None,
        *,
        tls: TLSFiles | None = None,
        host: str = "127.0.0.1",
        subprotocols: tuple[str, ...] = SERVER_SUBPROTOCOLS,
        **serve_kwargs: Any,
    ) -> None:
        from websockets.frames import Opcode
        from websockets.sync.server import ServerConnection, serve
        from websockets.version import version as websockets_version

        self.events = EventLog()
        self.flood_sent: dict[str, int] = {}
        self.scheme = "wss" if tls else "ws"
        self.host = host
        self.ca_path = tls.ca_path if tls else None
        peer = self
        handle = handler or _websockets_path_handler
        websockets_major = int(websockets_version.split(".")[0])

        class RecordingConnection(ServerConnection):  # type: ignore[misc]
            """Records the pings and pongs the client sends."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.wsc_pings: list[str] = []
                self.wsc_pongs: list[str] = []

            def process_event(self, event: Any) -> None:
                if getattr(event, "opcode", None) in (Opcode.PING, Opcode.PONG):
                    kind = "ping" if event.opcode is Opcode.PING else "pong"
                    data = bytes(event.data).hex()
                    (self.wsc_pings if kind == "ping" else self.wsc_pongs).append(data)
                    request = getattr(self, "request", None)
                    cid = None
                    if request is not None:
                        cid = parse_qs(urlsplit(request.path).query).get("cid", [None])[0]
                    peer.events.add({"event": kind, "cid": cid, "data": data})
                super().process_event(event)

            if websockets_major < 17:

                def send_data(self) -> None:
                    """websockets 16 (the last release for Python 3.10) sets the socket's
                    timeout here once a close starts, on the sending thread, while its
                    reading thread may be entering an SSL read: that read then fails at
                    once ("The read operation timed out"), and the server drops the
                    connection and records 1006 instead of the client's close frame
                    (about 1 server-initiated wss close in 20). websockets 17 reads after
                    a select() instead. Send without touching the timeout."""
                    for data in self.protocol.data_to_send():
                        if data:
                            self.socket.sendall(data)
                        else:
                            try:
                                self.socket.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass

        def select_subprotocol(connection: Any, offered: Any) -> str | None:
            for protocol in subprotocols:
                if protocol in offered:
                    return protocol
            return None

        options: dict[str, Any] = {
            "ssl": tls.server_context if tls else None,
            "select_subprotocol": select_subprotocol,
            "create_connection": RecordingConnection,
            "ping_interval": None,
            "max_size": 64 << 20,
            "close_timeout": 3,
        }
        options.update(serve_kwargs)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, 0), family=family)
        self._server = serve(lambda ws: handle(peer, ws), sock=listener, **options)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"peer-websockets-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close every connection, stop accepting and join the server thread."""
        self._server.shutdown()
        self._thread.join(10)


# --------------------------------------------------------------------------- node server


def _node_missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return "the npm package ws is not installed (run: npm ci --prefix tests/node)"
    return None


def require_node() -> None:
    """Fail (under CI) or skip (elsewhere) when node or its ws module is missing."""
    reason = _node_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (.ci/install-test-peers.sh)")
    pytest.skip(reason)


class NodePeer(_PeerBase):
    """Node's ``ws`` server (``tests/node/server.js``) in a subprocess.

    Args:
        tls: certificate files for wss (None: ws).
        deflate: enable permessage-deflate on the server.
        protocols: the subprotocols it supports, best first.
        auto_pong: answer pings (False: never, for keepalive tests).
        host: ``127.0.0.1`` or ``::1``.
        extra_args: more command-line options of server.js.
    """

    name = "node"

    def __init__(
        self,
        *,
        tls: TLSFiles | None = None,
        deflate: bool = False,
        protocols: tuple[str, ...] = SERVER_SUBPROTOCOLS,
        auto_pong: bool = True,
        host: str = "127.0.0.1",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.events = EventLog()
        self.scheme = "wss" if tls else "ws"
        self.host = host
        self.ca_path = tls.ca_path if tls else None
        self.stderr_lines: list[str] = []
        args = ["node", str(NODE_SERVER), "--host", host, "--port", "0", "--protocols", ",".join(protocols)]
        if tls:
            args += ["--cert", tls.chain_path, "--key", tls.key_path]
        if deflate:
            args.append("--deflate")
        if not auto_pong:
            args.append("--no-auto-pong")
        args += list(extra_args)
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(NODE_DIR),
            text=True,
            encoding="utf-8",
        )
        self._stdout_thread = threading.Thread(target=self._read_stdout, name="peer-node-stdout", daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="peer-node-stderr", daemon=True)
        self._stdout_thread.start()
        self._stderr_thread.start()
        try:
            listening = self.events.wait_for("listening", timeout=15)
        except AssertionError:
            self.stop()
            raise RuntimeError(
                "the node ws server did not start: " + "".join(self.stderr_lines)[-2000:]
            ) from None
        self.port = int(listening["port"])

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "output", "cid": None, "line": line}
            self.events.add(record)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.stderr_lines.append(line)

    def stop(self) -> None:
        """End the subprocess (closing its stdin first, then SIGTERM, then SIGKILL)."""
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(3)
        elif proc.stdin is not None:
            proc.stdin.close()
        self._stdout_thread.join(5)
        self._stderr_thread.join(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# --------------------------------------------------------------------------- fixtures: servers


@pytest.fixture(scope="session")
def websockets_server() -> Iterator[WebsocketsPeer]:
    """The websockets package's server, ws://127.0.0.1:<port>, path language."""
    server = WebsocketsPeer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def websockets_tls_server(server_tls: TLSFiles) -> Iterator[WebsocketsPeer]:
    """The websockets package's server over TLS (verify with ``ca_path``)."""
    server = WebsocketsPeer(tls=server_tls)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_server() -> Iterator[NodePeer]:
    """Node's ws server, ws://127.0.0.1:<port>, path language."""
    require_node()
    server = NodePeer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_tls_server(server_tls: TLSFiles) -> Iterator[NodePeer]:
    """Node's ws server over TLS (verify with ``ca_path``)."""
    require_node()
    server = NodePeer(tls=server_tls)
    yield server
    server.stop()


PEERS = {
    "websockets-ws": "websockets_server",
    "websockets-wss": "websockets_tls_server",
    "node-ws": "node_server",
    "node-wss": "node_tls_server",
}


@pytest.fixture(params=list(PEERS))
def peer(request: pytest.FixtureRequest) -> _PeerBase:
    """Each real server in turn: websockets and node ws, plain and TLS."""
    return request.getfixturevalue(PEERS[request.param])  # type: ignore[no-any-return]


@pytest.fixture(params=["websockets-ws", "node-ws"])
def plain_peer(request: pytest.FixtureRequest) -> _PeerBase:
    """Each real server without TLS (for tests where TLS adds nothing)."""
    return request.getfixturevalue(PEERS[request.param])  # type: ignore[no-any-return]


@pytest.fixture
def websockets_server_factory() -> Iterator[Callable[..., WebsocketsPeer]]:
    """Start websockets servers with custom options; all stopped at teardown."""
    started: list[WebsocketsPeer] = []

    def factory(
        handler: Callable[[WebsocketsPeer, Any], None] | None = None, **kwargs: Any
    ) -> WebsocketsPeer:
        server = WebsocketsPeer(handler, **kwargs)
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def node_server_factory() -> Iterator[Callable[..., NodePeer]]:
    """Start node ws servers with custom options; all stopped at teardown."""
    require_node()
    started: list[NodePeer] = []

    def factory(**kwargs: Any) -> NodePeer:
        server = NodePeer(**kwargs)
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """Start scripted raw-socket servers: ``raw_server(script, **options)``; stopped at teardown."""
    started: list[RawServer] = []

    def factory(*args: Any, **kwargs: Any) -> RawServer:
        server = RawServer(*args, **kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver on 127.0.0.1 (not ``localhost``, which may resolve to ::1 first)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def refused_port() -> int:
    """A loopback port with nothing listening (bound then released; connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback_available() -> bool:
    """True when ``::1`` can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True
