"""Real proxies on loopback for the proxy tests (imported by this folder's conftest.py), and targets that record who reached them.

Proxies (each a session fixture, started on first use, stopped at the end):

* ``squid_open``, ``squid_basic``, ``squid_digest``, ``squid_ntlm``, ``squid_all``
  (offers NTLM, Digest and Basic at once), ``squid_https`` (TLS to the proxy, Basic auth):
  Debian's squid, one process each with its own config, port, logs and pid file. The
  access log records the CONNECT target, the authenticated user and an ``X-Wsclient-Test``
  request header.
* ``pproxy``: one pproxy process with several listeners: open ``http+socks4+socks5``,
  ``socks5``/``http`` with ``alice:secret``, ``socks4`` with user id ``alice``, and
  ``http+ssl`` (an https:// proxy) with ``alice:secret``.
* ``dante_open`` / ``dante_auth``: danted; SOCKS5 username auth checks the system user
  that ``.ci/install-proxies.sh`` creates.
* ``spnego_proxy``: a small CONNECT proxy whose NTLM/Negotiate check is pyspnego's server
  side (it verifies the password, which squid's ``ntlm_fake_auth`` does not).
* ``scripted_proxy``: a factory of raw-socket "proxies" that answer with given bytes, for
  garbage, early closes, hangs and odd but valid answers.

Targets: ``ws_target`` / ``wss_target`` (the ``websockets`` package's sync server on a
thread, recording each connection's peer address and request headers) and ``tcp_target``
(a TCP echo recording peers and every byte received).

A missing tool fails the test when ``CI`` is set and skips it otherwise.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))
SQUID_HELPERS = Path("/usr/lib/squid")

#: Credentials used by every proxy that checks them.
USER = "alice"
BASIC_PASSWORD = "S3cret:pass w@rd"
DIGEST_PASSWORD = "digest pass/1@x"
PPROXY_PASSWORD = "secret"
#: The system user that dante authenticates (created by .ci/install-proxies.sh).
DANTE_USER = "wsproxytest"
DANTE_PASSWORD = "Dante-Pass-1"
#: NTLM credentials that the spnego proxy accepts.
NTLM_DOMAIN = "CORP"
NTLM_PASSWORD = "Ntlm-Pass-1"


def need(found: bool, message: str) -> None:
    """Skip outside CI, fail in CI, when something a test needs is missing."""
    if found:
        return
    if IN_CI:
        pytest.fail(f"{message}: .ci/install-proxies.sh must provide it")
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(
    host: str, port: int, proc: subprocess.Popen[bytes] | None, log: Path | None, what: str
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not start on {host}:{port}:\n{tail}")


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class ProxyProcess:
    """A proxy subprocess on loopback."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def url(self, scheme: str = "http", user: str | None = None, password: str | None = None) -> str:
        from urllib.parse import quote

        auth = ""
        if user is not None:
            auth = quote(user, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}"

    def terminate(self) -> None:
        """Ask the process to stop, without waiting (squid takes two seconds to go)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        """Stop the process, wait for it, remove its work folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<{self.name} {self.host}:{self.port}>"


def _private_dir(prefix: str, owner: str | None) -> Path:
    """A work folder that an unprivileged daemon user can use (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if owner is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


# --------------------------------------------------------------------------- squid

_SQUID_BASE = """\
http_port {listen}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
logformat wsclient %ts.%03tu %>a:%>p %Ss/%03>Hs %rm %ru user=%un xtest=%{{X-Wsclient-Test}}>h
access_log stdio:{dir}/access.log wsclient
cache deny all
cache_mem 8 MB
coredump_dir {dir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
visible_hostname wsclient-test
forwarded_for delete
via off
{user}
{auth}
{access}
"""


class Squid(ProxyProcess):
    """One squid process with its own configuration."""

    def __init__(self, auth: str, *, https: Any = None, realm: Any = None) -> None:
        super().__init__(f"squid-{auth}", "127.0.0.1", free_port())
        squid = shutil.which("squid") or "/usr/sbin/squid"
        need(os.path.exists(squid), "squid is not installed")
        owner = "proxy" if os.geteuid() == 0 else None
        if owner is not None:
            need(_user_exists("proxy"), "the 'proxy' user (from the squid package) is missing")
        self.workdir = _private_dir("wsclient-squid-", owner)
        d = self.workdir
        helpers: list[str] = []
        children = "children 2 startup=1 idle=1"
        if auth in ("basic", "all", "https"):
            htpasswd = shutil.which("htpasswd")
            need(htpasswd is not None, "htpasswd (apache2-utils) is not installed")
            subprocess.run(
                [htpasswd, "-b", "-c", str(d / "passwd"), USER, BASIC_PASSWORD],
                check=True,
                capture_output=True,
            )
            helpers.append(
                f"auth_param basic program {SQUID_HELPERS}/basic_ncsa_auth {d}/passwd\n"
                f"auth_param basic realm wsclient-basic\nauth_param basic {children}"
            )
        if auth in ("digest", "all"):
            (d / "digest").write_text(f"{USER}:{DIGEST_PASSWORD}\n")
            helpers.append(
                f"auth_param digest program {SQUID_HELPERS}/digest_file_auth {d}/digest\n"
                f"auth_param digest realm wsclient-digest\nauth_param digest {children}"
            )
        if auth in ("ntlm", "all"):
            helpers.append(
                f"auth_param ntlm program {SQUID_HELPERS}/ntlm_fake_auth\n"
                f"auth_param ntlm {children}\nauth_param ntlm keep_alive on"
            )
        if auth == "negotiate":
            # Kerberos only (krb5realm.Realm): the keytab holds the proxy's HTTP/localhost key.
            helpers.append(
                f"auth_param negotiate program {SQUID_HELPERS}/negotiate_kerberos_auth "
                f"-k {realm.keytab} -s {realm.service} -c {d}\n"
                f"auth_param negotiate {children}\nauth_param negotiate keep_alive on"
            )
        for helper in helpers:
            program = helper.split()[3]
            need(os.path.exists(program), f"the squid helper {program} is missing")
        # Preference order in squid's 407 is the config order: put the weakest first so
        # the client's own ordering is what is tested.
        helpers.reverse()
        if helpers:
            access = (
                "acl authed proxy_auth REQUIRED\nacl denied dstdomain denied.invalid\n"
                "http_access deny denied\nhttp_access allow authed\nhttp_access deny all"
            )
        else:
            access = "acl denied dstdomain denied.invalid\nhttp_access deny denied\nhttp_access allow all"
        listen = f"127.0.0.1:{self.port}"
        if https is not None:
            listen = f"127.0.0.1:{free_port()}"  # squid needs one http_port
            access = (
                f"https_port 127.0.0.1:{self.port} tls-cert={https.chain_path} tls-key={https.key_path}\n"
                + access
            )
        for path in (d / "passwd", d / "digest"):
            if path.exists():
                path.chmod(0o644)
        config = _SQUID_BASE.format(
            listen=listen,
            dir=d,
            user="cache_effective_user proxy" if owner else "",
            auth="\n".join(helpers),
            access=access,
        )
        (d / "squid.conf").write_text(config)
        if owner is not None:
            for path in d.iterdir():
                os.chown(path, pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
        log = d / "stderr.log"
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [squid, "-N", "-n", f"wsc{self.port}", "-f", str(d / "squid.conf")],
                stdout=err,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # The auth helpers inherit squid's environment (KRB5_CONFIG for Kerberos).
                env={**os.environ, **realm.env()} if realm is not None else None,
            )
        try:
            wait_port(self.host, self.port, self.proc, d / "cache.log", self.name)
        except BaseException:
            self.stop()
            raise

    def access_lines(self) -> list[str]:
        path = self.workdir / "access.log" if self.workdir else None
        if path is None or not path.exists():
            return []
        return path.read_text(errors="replace").splitlines()

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        """Wait for an access-log line containing ``needle`` (squid logs a CONNECT when the
        tunnel ends) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.access_lines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no access-log line with {needle!r}: {self.access_lines()!r}")
            time.sleep(0.05)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def proxy_reaper() -> Iterator[list[ProxyProcess]]:
    """Proxies put here are stopped together at the end (in parallel, not one by one)."""
    procs: list[ProxyProcess] = []
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.stop()


def _squid_fixture(auth: str) -> Callable[..., Iterator[Squid]]:
    @pytest.fixture(scope="session")
    def fixture(proxy_reaper: list[ProxyProcess]) -> Iterator[Squid]:
        proxy = Squid(auth)
        proxy_reaper.append(proxy)
        yield proxy
        proxy.terminate()

    return fixture


squid_open = _squid_fixture("open")
squid_basic = _squid_fixture("basic")
squid_digest = _squid_fixture("digest")
squid_ntlm = _squid_fixture("ntlm")
squid_all = _squid_fixture("all")


@pytest.fixture(scope="session")
def krb5_realm() -> Iterator[Any]:
    """A loopback MIT Kerberos realm (krb5realm.py) with alice's ticket in its cache."""
    from krb5realm import Realm, missing_programs

    missing = missing_programs()
    need(not missing, f"MIT Kerberos programs are missing ({', '.join(missing)}): .ci/install-kerberos.sh")
    try:
        import gssapi  # noqa: F401
        import spnego  # noqa: F401
    except ImportError:
        need(False, "pyspnego's Kerberos bindings are missing: pip install 'python-wsclient[kerberos]'")
    realm = Realm()
    try:
        realm.start()
        realm.kinit()
        yield realm
    finally:
        realm.stop()


@pytest.fixture(scope="session")
def squid_kerberos(krb5_realm: Any, proxy_reaper: list[ProxyProcess]) -> Iterator[Squid]:
    """squid asking for Negotiate only, checked by negotiate_kerberos_auth against the realm."""
    need(
        os.path.exists(SQUID_HELPERS / "negotiate_kerberos_auth"),
        "squid's negotiate_kerberos_auth helper is missing",
    )
    proxy = Squid("negotiate", realm=krb5_realm)
    proxy_reaper.append(proxy)
    yield proxy
    proxy.terminate()


@pytest.fixture(scope="session")
def proxy_tls(tls_ca: Any, tls_dir: Path) -> Any:
    """A certificate for the proxy at 127.0.0.1 (from the same trustme CA as the targets)."""
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")

    @dataclass
    class Files:
        ca_path: str
        chain_path: str
        key_path: str

    chain = tls_dir / "proxy-chain.pem"
    key = tls_dir / "proxy-key.pem"
    with open(chain, "wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key))
    ca = tls_dir / "proxy-ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca))
    for path in (chain, key, ca):
        path.chmod(0o644)
    copy_dir = _private_dir("wsclient-proxy-tls-", "proxy" if os.geteuid() == 0 else None)
    files = Files(str(ca), str(copy_dir / "chain.pem"), str(copy_dir / "key.pem"))
    shutil.copy(chain, files.chain_path)
    shutil.copy(key, files.key_path)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("proxy") if _user_exists("proxy") else None
        if entry is not None:
            for path in (files.chain_path, files.key_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
    yield files
    shutil.rmtree(copy_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def squid_https(proxy_tls: Any, proxy_reaper: list[ProxyProcess]) -> Iterator[Squid]:
    """squid with an ``https_port`` (TLS to the proxy) and Basic auth."""
    proxy = Squid("https", https=proxy_tls)
    proxy_reaper.append(proxy)
    yield proxy
    proxy.terminate()


# --------------------------------------------------------------------------- pproxy


class PProxy(ProxyProcess):
    """One pproxy process with several listeners (ports in ``self.ports``)."""

    def __init__(self, proxy_tls: Any) -> None:
        super().__init__("pproxy", "127.0.0.1", 0)
        try:
            import pproxy  # noqa: F401
        except ImportError:
            need(False, "pproxy is not installed (pip install pproxy)")
        self.ports = {name: free_port() for name in ("open", "auth", "socks4_auth", "https")}
        self.workdir = Path(tempfile.mkdtemp(prefix="wsclient-pproxy-"))
        h = "127.0.0.1"
        argv = [
            sys.executable,
            "-m",
            "pproxy",
            "-l",
            f"http+socks4+socks5://{h}:{self.ports['open']}",
            "-l",
            f"http+socks5://{h}:{self.ports['auth']}#{USER}:{PPROXY_PASSWORD}",
            "-l",
            f"socks4://{h}:{self.ports['socks4_auth']}#{USER}",
            "-l",
            f"http+ssl://{h}:{self.ports['https']}#{USER}:{PPROXY_PASSWORD}",
            "--ssl",
            f"{proxy_tls.chain_path},{proxy_tls.key_path}",
            # Never remember an authenticated client address (the default is 30 days).
            "--auth",
            "-1",
        ]
        log = self.workdir / "pproxy.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            for port in self.ports.values():
                wait_port(h, port, self.proc, log, "pproxy")
        except BaseException:
            self.stop()
            raise

    def url_for(
        self, listener: str, scheme: str, user: str | None = None, password: str | None = None
    ) -> str:
        self.port = self.ports[listener]
        return self.url(scheme, user, password)


@pytest.fixture(scope="session")
def pproxy(proxy_tls: Any) -> Iterator[PProxy]:
    proxy = PProxy(proxy_tls)
    yield proxy
    proxy.stop()


# --------------------------------------------------------------------------- dante

_DANTE_CONF = """\
logoutput: {dir}/danted.log
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks block {{
    from: 0.0.0.0/0 to: 127.0.0.1/32 port = {blocked}
    command: connect
}}
socks pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    command: connect
}}
"""


class Dante(ProxyProcess):
    """danted on loopback; ``blocked_port`` is a target port its rules refuse."""

    def __init__(self, method: str) -> None:
        super().__init__(f"dante-{method}", "127.0.0.1", free_port())
        danted = shutil.which("danted") or "/usr/sbin/danted"
        need(os.path.exists(danted), "danted (dante-server) is not installed")
        need(os.geteuid() == 0, "danted with system-user authentication needs root")
        if method == "username":
            need(_user_exists(DANTE_USER), f"the system user {DANTE_USER} is missing")
        self.blocked_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="wsclient-dante-"))
        conf = self.workdir / "danted.conf"
        conf.write_text(
            _DANTE_CONF.format(dir=self.workdir, port=self.port, method=method, blocked=self.blocked_port)
        )
        log = self.workdir / "danted.log"
        self.proc = subprocess.Popen(
            [danted, "-f", str(conf), "-p", str(self.workdir / "danted.pid"), "-N", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_port(self.host, self.port, self.proc, log, self.name)
        except BaseException:
            self.stop()
            raise


@pytest.fixture(scope="session")
def dante_open() -> Iterator[Dante]:
    proxy = Dante("none")
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def dante_auth() -> Iterator[Dante]:
    proxy = Dante("username")
    yield proxy
    proxy.stop()


# --------------------------------------------------------------------------- targets


@dataclass
class Seen:
    """What a target recorded about one connection."""

    peer: tuple[Any, ...]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""
    data: bytearray = field(default_factory=bytearray)


class WSTarget:
    """The ``websockets`` sync server (echo), recording each connection."""

    def __init__(self, tls: Any = None, host: str = "127.0.0.1") -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.server import serve

        self.host = host
        self.scheme = "wss" if tls else "ws"
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

        def handler(ws: Any) -> None:
            headers = {name.lower(): value for name, value in ws.request.headers.raw_items()}
            with self._lock:
                self.seen.append(Seen(tuple(ws.remote_address), headers, ws.request.path))
            try:
                for message in ws:
                    ws.send(message)
            except ConnectionClosed:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, 0), family=family)
        self._server = serve(
            handler,
            sock=listener,
            ssl=tls.server_context if tls else None,
            ping_interval=None,
            close_timeout=2,
        )
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"proxy-target-{self.port}", daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/echo", host: str | None = None) -> str:
        host = host or self.host
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown}:{self.port}{path}"

    def find(self, path: str) -> Seen:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                for seen in self.seen:
                    if seen.path == path:
                        return seen
            time.sleep(0.02)
        raise AssertionError(f"the target saw no connection to {path}")

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


@pytest.fixture(scope="session")
def ws_target() -> Iterator[WSTarget]:
    target = WSTarget()
    yield target
    target.stop()


@pytest.fixture(scope="session")
def wss_target(server_tls: Any) -> Iterator[WSTarget]:
    target = WSTarget(server_tls)
    yield target
    target.stop()


@pytest.fixture(scope="session")
def ws_target_v6() -> Iterator[WSTarget]:
    need(ipv6_available(), "IPv6 loopback is not available")
    target = WSTarget(host="::1")
    yield target
    target.stop()


class TCPEcho:
    """A TCP echo server that records each connection's peer and the bytes it received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name=f"proxy-echo-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            seen = Seen(tuple(peer))
            with self._lock:
                self.seen.append(seen)
                self._conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn, seen), daemon=True)
            thread.start()

    def _echo(self, conn: socket.socket, seen: Seen) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                seen.data += data
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def stop(self) -> None:
        self._stopping = True
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def tcp_target() -> Iterator[TCPEcho]:
    target = TCPEcho()
    yield target
    target.stop()


# --------------------------------------------------------------------------- scripted proxies


class Trickler:
    """A loopback server for bounds: its first connection gets ``script(trickler, conn)`` on
    a thread; :meth:`send` hands out bytes one at a time, ``every`` seconds apart, so that
    each read of the client gets something before a per-read timeout would end. Use as a
    context manager: leaving it stops the script and closes everything."""

    def __init__(self, script: Callable[[Trickler, socket.socket], None], every: float = 0.3) -> None:
        self.every = every
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._script = script
        self._thread = threading.Thread(target=self._run, name=f"trickler-{self.port}", daemon=True)
        self._thread.start()

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Send ``data`` a byte at a time; False once stopped or the client went away."""
        for byte in data:
            if self._stop.wait(self.every):
                return False
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return False
        return True

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn, contextlib.suppress(OSError):
            self._script(self, conn)

    def __enter__(self) -> Trickler:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


class ScriptedProxy:
    """A raw-socket server that runs ``script(conn)`` for each connection it accepts."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[bytes] = []
        self._script = script
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name=f"proxy-scripted-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        self.requests.append(data)
        return data

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self._script(conn)
        except OSError:
            pass

    def stop(self) -> None:
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def scripted_proxy() -> Iterator[Callable[[Callable[[ScriptedProxy, socket.socket], None]], ScriptedProxy]]:
    made: list[ScriptedProxy] = []

    def factory(script: Callable[[ScriptedProxy, socket.socket], None]) -> ScriptedProxy:
        holder: list[ScriptedProxy] = []
        proxy = ScriptedProxy(lambda conn: script(holder[0], conn))
        holder.append(proxy)
        made.append(proxy)
        return proxy

    yield factory
    for proxy in made:
        proxy.stop()


# --------------------------------------------------------------------------- scripted SOCKS


class ScriptedSocks:
    """A minimal SOCKS4/4a/5 server that records how each request named its target, then
    acts as the target itself (an echo). pproxy and dante do not speak SOCKS4a, and a
    record of the address form is what shows where names were resolved.

    ``requests`` holds dicts: ``version``, ``form`` (``"ipv4"``, ``"ipv6"`` or ``"domain"``),
    ``host``, ``port``, and ``userid`` (SOCKS4) or ``username``/``password`` (SOCKS5).
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[dict[str, Any]] = []
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"proxy-socks-{self.port}", daemon=True).start()

    def url(self, scheme: str, user: str | None = None, password: str | None = None) -> str:
        auth = "" if user is None else user + (f":{password}" if password is not None else "") + "@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _exact(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    @staticmethod
    def _cstring(conn: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\0"):
            chunk = conn.recv(1)
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data[:-1].decode("latin-1")

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                version = self._exact(conn, 1)[0]
                if version == 4:
                    self._socks4(conn)
                elif version == 5:
                    self._socks5(conn)
                else:
                    return
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                return

    def _socks4(self, conn: socket.socket) -> None:
        _command, port_hi, port_lo, *ip = self._exact(conn, 7)
        userid = self._cstring(conn)
        record: dict[str, Any] = {"version": 4, "port": port_hi << 8 | port_lo, "userid": userid}
        if ip[:3] == [0, 0, 0] and ip[3] != 0:
            record.update(form="domain", host=self._cstring(conn))
        else:
            record.update(form="ipv4", host=".".join(map(str, ip)))
        self.requests.append(record)
        conn.sendall(b"\x00\x5a" + bytes(6))

    def _socks5(self, conn: socket.socket) -> None:
        methods = self._exact(conn, self._exact(conn, 1)[0])
        record: dict[str, Any] = {"version": 5}
        if 2 in methods:
            conn.sendall(b"\x05\x02")
            self._exact(conn, 1)
            record["username"] = self._exact(conn, self._exact(conn, 1)[0]).decode()
            record["password"] = self._exact(conn, self._exact(conn, 1)[0]).decode()
            conn.sendall(b"\x01\x00")
        else:
            conn.sendall(b"\x05\x00")
        _ver, _cmd, _rsv, atyp = self._exact(conn, 4)
        if atyp == 1:
            record.update(form="ipv4", host=socket.inet_ntop(socket.AF_INET, self._exact(conn, 4)))
        elif atyp == 4:
            record.update(form="ipv6", host=socket.inet_ntop(socket.AF_INET6, self._exact(conn, 16)))
        else:
            record.update(form="domain", host=self._exact(conn, self._exact(conn, 1)[0]).decode())
        record["port"] = int.from_bytes(self._exact(conn, 2), "big")
        self.requests.append(record)
        conn.sendall(b"\x05\x00\x00\x01" + bytes(6))

    def stop(self) -> None:
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def scripted_socks() -> Iterator[ScriptedSocks]:
    server = ScriptedSocks()
    yield server
    server.stop()


# --------------------------------------------------------------------------- spnego proxy


class SpnegoProxy:
    """A CONNECT proxy (threads, raw sockets) that authenticates with pyspnego's server.

    ``scheme`` is ``"NTLM"`` or ``"Negotiate"``; the accepted account is
    ``CORP\\alice`` / ``NTLM_PASSWORD`` (NTLM_USER_FILE). Tunnels are relayed to the target.
    ``users`` records who authenticated.
    """

    def __init__(
        self,
        scheme: str,
        user_file: Path | None,
        *,
        tls_context: Any = None,
        channel_bindings: Any = None,
    ) -> None:
        import spnego

        self._spnego = spnego
        self.scheme = scheme
        self.user_file = user_file
        self.users: list[str] = []
        self.requests: list[bytes] = []
        # An https:// proxy (TLS to the proxy) that demands this channel binding: pyspnego's
        # acceptor checks it, and NTLM AUTHENTICATE messages must carry exactly its MD5
        # (pyspnego alone would also accept an all-zero "no binding" value).
        self.tls_context = tls_context
        self.channel_bindings = channel_bindings
        self.ntlm_bindings_seen: list[bytes | None] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"proxy-spnego-{self.port}", daemon=True).start()

    def url(self, user: str | None, password: str | None) -> str:
        from urllib.parse import quote

        auth = "" if user is None else f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
        return f"http://{auth}127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_head(self, conn: socket.socket, buf: bytearray) -> bytes | None:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        buf[:] = rest
        self.requests.append(head)
        return head

    def _serve(self, conn: socket.socket) -> None:
        import base64 as b64

        if self.tls_context is not None:
            try:
                conn.settimeout(10)
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            except OSError:
                conn.close()
                return
        buf = bytearray()
        context: Any = None
        deny = (
            f"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: {self.scheme}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        try:
            while True:
                head = self._read_head(conn, buf)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split()[1]
                auth = next(
                    (
                        line.split(":", 1)[1].strip()
                        for line in lines[1:]
                        if line.lower().startswith("proxy-authorization:")
                    ),
                    None,
                )
                if auth is None or not auth.startswith(self.scheme + " "):
                    context = None
                    conn.sendall(deny)
                    continue
                token = b64.b64decode(auth.split(" ", 1)[1])
                if context is None:
                    protocol = "ntlm" if self.scheme == "NTLM" else "negotiate"
                    context = self._spnego.server(protocol=protocol, channel_bindings=self.channel_bindings)
                try:
                    if self.channel_bindings is not None:
                        self._check_ntlm_bindings(token)
                    out = context.step(token)
                except Exception:
                    context = None
                    conn.sendall(deny)
                    continue
                if not context.complete:
                    value = b64.b64encode(out or b"").decode()
                    conn.sendall(
                        (
                            f"HTTP/1.1 407 Proxy Authentication Required\r\n"
                            f"Proxy-Authenticate: {self.scheme} {value}\r\nContent-Length: 0\r\n\r\n"
                        ).encode()
                    )
                    continue
                self.users.append(str(context.client_principal))
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
                upstream.settimeout(None)
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if buf:
                    upstream.sendall(bytes(buf))
                _relay(conn, upstream)
                return
        except OSError:
            return
        finally:
            conn.close()

    def _check_ntlm_bindings(self, token: bytes) -> None:
        """Raise unless an NTLM AUTHENTICATE message in ``token`` (bare or inside SPNEGO)
        carries MsvAvChannelBindings equal to the MD5 of the expected bindings."""
        import hashlib
        import struct

        start = token.find(b"NTLMSSP\x00\x03\x00\x00\x00")
        if start < 0:
            return  # NEGOTIATE message, or Kerberos: the acceptor checks those
        msg = token[start:]
        nt_len, _, nt_offset = struct.unpack_from("<HHI", msg, 20)
        nt = msg[nt_offset : nt_offset + nt_len]
        pos, found = 44, None  # NTProofStr (16) + the fixed part of the client challenge (28)
        while pos + 4 <= len(nt):
            av_id, av_len = struct.unpack_from("<HH", nt, pos)
            if av_id == 0:
                break
            if av_id == 0x000A:  # MsvAvChannelBindings
                found = nt[pos + 4 : pos + 4 + av_len]
            pos += 4 + av_len
        self.ntlm_bindings_seen.append(found)
        if found != hashlib.md5(self.channel_bindings.pack()).digest():
            raise ValueError("wrong or missing channel binding")

    def stop(self) -> None:
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _relay(a: socket.socket, b: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join(10)
    b.close()


@pytest.fixture(scope="session")
def spnego_user_file() -> Iterator[Path]:
    try:
        import spnego  # noqa: F401
    except ImportError:
        need(False, "pyspnego is not installed (pip install pyspnego)")
    folder = Path(tempfile.mkdtemp(prefix="wsclient-ntlm-"))
    path = folder / "users"
    path.write_text(f"{NTLM_DOMAIN}:{USER}:{NTLM_PASSWORD}\n")
    # pyspnego's NTLM acceptor reads its accounts from this file.
    previous = os.environ.get("NTLM_USER_FILE")
    os.environ["NTLM_USER_FILE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("NTLM_USER_FILE", None)
    else:
        os.environ["NTLM_USER_FILE"] = previous
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ntlm_proxy(spnego_user_file: Path) -> Iterator[SpnegoProxy]:
    proxy = SpnegoProxy("NTLM", spnego_user_file)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def negotiate_proxy(spnego_user_file: Path) -> Iterator[SpnegoProxy]:
    proxy = SpnegoProxy("Negotiate", spnego_user_file)
    yield proxy
    proxy.stop()


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def options() -> Callable[..., Any]:
    """Build a TransportOptions for direct ``open_tunnel`` calls, from ``connect()``-style
    keywords (``verify=``, ``request_options=``), through the same parser as the client."""
    from wsclient.transport.options import parse_request_options

    def make(*, request_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return parse_request_options(
            {**(request_options or {}), **kwargs}, tls_options={}, disable_nagle_algorithm=True, default_timeout=10
        )

    return make


def deadline(seconds: float = 10.0) -> Any:
    from wsclient._net import Deadline

    return Deadline(seconds)


def echo_roundtrip(stream: Any, payload: bytes) -> None:
    """Send ``payload`` through ``stream`` to an echo target and check it comes back."""
    stream.settimeout(10)
    stream.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = stream.recv(65536)
        assert chunk, f"the stream ended after {got!r}"
        got += chunk
    assert got == payload
