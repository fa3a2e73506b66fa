"""PAC files: which proxies a ``FindProxyForURL()`` script chooses for a WebSocket target.

``proxies={"pac": URL}`` names a proxy auto-config file (``http://``, ``https://`` or
``file://``). :func:`resolve_pac` fetches it once per process and URL (later connections reuse
the compiled script), calls ``FindProxyForURL(url, host)`` with the target's HTTP equivalent
(``ws://h:p/x`` becomes ``http://h:p/x``, ``wss://`` becomes ``https://``) and turns the answer
(``"PROXY a:3128; SOCKS5 b:1080; DIRECT"``) into the ordered candidates the transport tries.

The JavaScript runs in pypac's parser (``pypac.parser.PACFile``, on the dukpy engine), the
extra ``python-wsclient[pac]``: a maintained implementation of the PAC helper functions
(``dnsDomainIs``, ``isInNet``, ``shExpMatch``, ...) rather than one more of our own.

A PAC file that cannot be fetched or evaluated is an error (:class:`ProxyError` naming it),
never a silent direct connection: a PAC is how a company says which traffic must go through
its proxies.

``proxies={"pac": "auto"}`` discovers the file (:func:`discover_pac_urls`): the operating
system's PAC setting, then WPAD through DNS (``http://wpad.<domain>/wpad.dat``). The first URL
that gives a PAC file is used (and cached as ``"auto"``); when none does, the connection is
direct, as in a browser set to "detect automatically".

Answer keywords, as browsers read them: ``PROXY``/``HTTP`` (an ``http://`` proxy), ``HTTPS``
(an ``https://`` proxy: TLS to the proxy), ``SOCKS``/``SOCKS4`` (SOCKS4, names resolved here,
as Chrome and Firefox do), ``SOCKS5`` (``socks5h://``: names resolved by the proxy, as Chrome
does), ``DIRECT``. Unknown entries are skipped (logged at DEBUG); an answer with no usable entry
is an error.
"""

from __future__ import annotations

import json
import logging
import os
import select
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._net import Deadline, map_errors, open_tcp, recv_within, send_within
from ..exceptions import ConnectFailed, ConnectTimeout, ProxyError
from ..http11 import HTTPParseError, Response, ResponseReader
from ..uri import WSURI
from .url import ProxyURL, parse_proxy_url, redact_url

__all__ = [
    "AUTO",
    "MAX_PAC_SIZE",
    "FetchOptions",
    "clear_pac_cache",
    "discover_pac_urls",
    "http_equivalent",
    "parse_pac_answer",
    "resolve_pac",
]

logger = logging.getLogger("wsclient.proxy")

#: Largest PAC file accepted (real ones are a few kilobytes; this stops a runaway download).
MAX_PAC_SIZE = 4 * 1024 * 1024
#: Redirects followed when fetching a PAC file.
MAX_PAC_REDIRECTS = 3

_EXTRA_HINT = "PAC files need pypac and dukpy: pip install 'python-wsclient[pac]'"

#: The ``"pac"`` value that asks for discovery instead of naming a PAC file.
AUTO = "auto"
#: Longest wait for one discovery candidate (most of them do not exist: their names do not
#: resolve or nothing listens), so that one dead candidate does not eat the whole timeout.
DISCOVERY_TRY_TIMEOUT = 2.0

# PAC keyword -> proxy URL scheme (see the module docstring for the browsers' reading).
_KEYWORDS: dict[str, str] = {
    "PROXY": "http",
    "HTTP": "http",
    "HTTPS": "https",
    "SOCKS": "socks4",
    "SOCKS4": "socks4",
    "SOCKS5": "socks5h",
}


def _seconds_left(deadline: Any) -> float:
    """Seconds before ``deadline``: a ``time.monotonic()`` instant or a deadline object with
    a ``remaining()`` (or ``timeout()``) method returning seconds (``None``: unbounded)."""
    if isinstance(deadline, (int, float)):
        return float(deadline) - time.monotonic()
    method = getattr(deadline, "remaining", None) or getattr(deadline, "timeout", None)
    left = method() if callable(method) else None
    return float("inf") if left is None else float(left)


def http_equivalent(uri: WSURI) -> tuple[str, str]:
    """The ``(url, host)`` that ``FindProxyForURL`` is called with for ``uri``.

    The port appears only when it is not the scheme's default, as in the URL a browser
    would pass; the host is bare (no brackets around an IPv6 address).
    """
    scheme = "https" if uri.secure else "http"
    return f"{scheme}://{uri.host_header}{uri.resource or '/'}", uri.host


def parse_pac_answer(answer: str) -> tuple[ProxyURL | None, ...]:
    """Parse a ``FindProxyForURL`` answer into candidates in order (``None`` is DIRECT).

    Entries are separated by ``;``; unknown or malformed entries are skipped. Duplicates
    are kept once (the first place wins).

    Raises:
        ValueError: no entry of the answer is usable.
    """
    candidates: list[ProxyURL | None] = []
    for entry in answer.split(";"):
        words = entry.split()
        if not words:
            continue
        keyword = words[0].upper()
        candidate: ProxyURL | None
        if keyword == "DIRECT" and len(words) == 1:
            candidate = None
        elif keyword in _KEYWORDS and len(words) == 2:
            try:
                candidate = parse_proxy_url(f"{_KEYWORDS[keyword]}://{words[1]}")
            except ValueError as exc:
                logger.debug("skipping the PAC entry %r: %s", entry.strip(), exc)
                continue
        else:
            logger.debug("skipping the unknown PAC entry %r", entry.strip())
            continue
        if candidate not in candidates:
            candidates.append(candidate)
    if not candidates:
        raise ValueError(f"no usable entry in {answer!r}")
    return tuple(candidates)


class _Script:
    """A compiled PAC file, evaluated in a process of its own (:mod:`._pac_worker`).

    dukpy's engine holds the GIL while a script runs, so a ``FindProxyForURL`` that never
    returns would freeze the whole program; in a separate process it is killed when the
    opening's deadline passes, and the opening fails with ``ConnectTimeout``. Starting the
    process costs about 0.1-0.2 s, once per PAC file; each call then costs a pipe round
    trip (~0.1 ms). One evaluation at a time per script (dukpy's interpreter is not meant
    for concurrent calls). Where no process can be started (no ``sys.executable``), the
    script runs in-process, unbounded, and a warning says so.
    """

    def __init__(self, source: str, shown: str, deadline: Any) -> None:
        self._source = source
        self._shown = shown
        # Serialises evaluations, and guards _proc/_buf (the worker and its unread output).
        self.lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._local: Any = None  # the in-process PACFile when no worker can be started
        try:  # here too: the worker runs the same interpreter, so this tells for both
            import pypac.parser  # type: ignore[import-not-found,import-untyped]  # noqa: F401
        except ImportError as exc:
            raise ProxyError(f"cannot use the PAC file {shown}: {_EXTRA_HINT}") from exc
        with self.lock:
            self._call({"source": source}, deadline, f"compiling the PAC file {shown}")

    def find(self, url: str, host: str, deadline: Any = None) -> Any:
        left = _bounded_left(deadline)
        if left is None:
            self.lock.acquire()
        elif left <= 0 or not self.lock.acquire(timeout=min(left, threading.TIMEOUT_MAX)):
            raise ConnectTimeout(f"timed out waiting for the PAC file {self._shown}")
        try:
            if self._proc is None and self._local is None:
                # The worker was killed (a call ran out of time): a fresh one compiles again.
                self._call({"source": self._source}, deadline, f"compiling the PAC file {self._shown}")
            return self._call({"url": url, "host": host}, deadline, f"FindProxyForURL({url!r})")
        finally:
            self.lock.release()

    def close(self) -> None:
        """End the worker process (it also ends by itself when this program exits)."""
        with self.lock:
            self._kill()

    def _kill(self) -> None:
        proc, self._proc, self._buf = self._proc, None, b""
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def _start(self) -> subprocess.Popen[bytes] | None:
        if not sys.executable:
            return None
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "wsclient.proxy._pac_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True,  # a terminal's Ctrl-C is ours to handle
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))},
            )
        except OSError as exc:
            logger.warning("cannot start the PAC evaluator process (%s): evaluating in-process, without a time limit", exc)
            return None

    def _call(self, request: dict[str, Any], deadline: Any, what: str) -> Any:
        """Send ``request`` to the worker and return its answer (the lock is held)."""
        assert self.lock.locked()
        if "source" in request and self._proc is None and self._local is None:
            self._proc = self._start()
            if self._proc is None:
                self._local = _compile_here(self._source, self._shown)
                return None
        if self._local is not None:
            return self._local.find_proxy_for_url(request["url"], request["host"])
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            line = self._read_line(proc, deadline)
        except OSError as exc:
            self._kill()
            raise ProxyError(f"the PAC evaluator for {self._shown} failed ({what}): {exc}") from exc
        if line is None:
            self._kill()  # the script may be stuck in a loop: only killing it stops it
            raise ConnectTimeout(f"timed out in the PAC file {self._shown}: {what} did not return in time")
        reply = json.loads(line)
        if "error" in reply:
            if reply.get("missing"):
                self._kill()
                raise ProxyError(f"cannot use the PAC file {self._shown}: {_EXTRA_HINT}")
            if "source" in request:
                self._kill()
                raise ProxyError(f"the PAC file {self._shown} cannot be evaluated: {reply['error']}")
            raise _ScriptError(reply["error"])
        return reply["answer"]

    def _read_line(self, proc: subprocess.Popen[bytes], deadline: Any) -> bytes | None:
        """The worker's next reply line; None when it did not come before ``deadline``."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = _bounded_left(deadline)
            if left is not None and left <= 0:
                return None
            if not _readable(fd, left):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("the evaluator process ended")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line


class _ScriptError(Exception):
    """FindProxyForURL raised (the message is the worker's)."""


# The worker runs ``-m wsclient.proxy._pac_worker``: make this copy of the package importable
# there even when it is not installed (a checkout on sys.path).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bounded_left(deadline: Any) -> float | None:
    """Seconds before ``deadline``; None when there is none (no deadline, or unbounded)."""
    if deadline is None:
        return None
    left = _seconds_left(deadline)
    return None if left == float("inf") else left


def _readable(fd: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))


def _compile_here(source: str, shown: str) -> Any:
    try:
        from pypac.parser import PACFile  # type: ignore[import-not-found,import-untyped]
    except ImportError as exc:
        raise ProxyError(f"cannot use the PAC file {shown}: {_EXTRA_HINT}") from exc
    try:
        return PACFile(source)
    except Exception as exc:  # MalformedPacError, or the engine's own errors
        raise ProxyError(f"the PAC file {shown} cannot be evaluated: {exc}") from exc


_cache: dict[str, _Script] = {}
# One lock per URL, so that concurrent first connections fetch a PAC file once, while a slow
# PAC server does not hold up connections that use another PAC file.
_url_locks: dict[str, threading.Lock] = {}
_cache_lock = threading.Lock()


def clear_pac_cache() -> None:
    """Forget every fetched PAC file and the result of discovery (the next connection
    fetches again)."""
    global _discovered, _discovery_done, _urls_job
    with _cache_lock:
        scripts = list(_cache.values())
        _cache.clear()
    with _discovery_lock:
        if _discovered is not None:
            scripts.append(_discovered[1])
        _discovered, _discovery_done, _urls_job = None, False, None
    for script in scripts:
        script.close()


@dataclass(frozen=True)
class FetchOptions:
    """How :func:`resolve_pac` fetches an ``https://`` PAC file: ``make_ssl_context()``
    returns the verifying context (built by the transport from ``verify``, ``tls_options``
    and the trust sources); None verifies with the default context."""

    make_ssl_context: Callable[[], ssl.SSLContext] | None = None


def resolve_pac(
    pac_url: str, uri: WSURI, deadline: Any, options: Any
) -> tuple[tuple[ProxyURL | None, ...], str]:
    """The proxies that the PAC file at ``pac_url`` chooses for ``uri``, in order.

    Args:
        pac_url: ``http://``, ``https://`` (verified, see ``options``) or ``file://``.
        uri: the WebSocket target.
        deadline: a ``time.monotonic()`` instant (or a deadline object, see
            :func:`_seconds_left`) bounding the download.
        options: a :class:`FetchOptions` (how an ``https://`` PAC file is verified), or None.

    Returns:
        ``(candidates, reason)``: proxy URLs, ``None`` standing for DIRECT, and a sentence
        saying where they come from, e.g. ``"PAC file http://h/proxy.pac returned
        'PROXY p:3128; DIRECT'"``.

    Raises:
        ProxyError: the PAC file cannot be fetched or evaluated, its answer is unusable, or
            the extra ``python-wsclient[pac]`` is not installed.
        ConnectTimeout: ``deadline`` passed while fetching the file.
    """
    if pac_url.strip().lower() == AUTO:
        found = _discover(deadline, options)
        if found is None:
            return (None,), "no PAC file found by discovery (OS setting, WPAD)"
        pac_url, script = found
        shown = redact_url(pac_url)
    else:
        shown = redact_url(pac_url)
        script = _load(pac_url, shown, deadline, options)
    url, host = http_equivalent(uri)
    try:
        answer = script.find(url, host, deadline)
    except (ConnectTimeout, ProxyError):
        raise
    except Exception as exc:  # dukpy's JSRuntimeError, or one from pypac's helpers
        raise ProxyError(f"the PAC file {shown} failed for {url}: {exc}") from exc
    if not isinstance(answer, str):
        raise ProxyError(f"the PAC file {shown} returned {answer!r} for {url}, not a string")
    try:
        candidates = parse_pac_answer(answer)
    except ValueError as exc:
        raise ProxyError(f"the PAC file {shown} returned an unusable answer for {url}: {exc}") from exc
    reason = f"PAC file {shown} returned {answer.strip()!r}"
    logger.debug("%s for %s", reason, url)
    return candidates, reason


class _Shorter:
    """A deadline at most ``seconds`` from now and never past ``deadline``."""

    def __init__(self, deadline: Any, seconds: float) -> None:
        self._end = time.monotonic() + min(max(_seconds_left(deadline), 0.0), seconds)

    def remaining(self) -> float:
        return self._end - time.monotonic()


# "auto": whether discovery ran, and the URL it found with its script (None: it found none).
_discovery_done = False
_discovered: tuple[str, _Script] | None = None
_discovery_lock = threading.Lock()


def _discover(deadline: Any, options: Any) -> tuple[str, _Script] | None:
    """Try the discovery URLs in order, once per process; the first PAC file that can be
    fetched and compiled wins. Candidates that fail are skipped (logged at DEBUG)."""
    global _discovered, _discovery_done
    left = _seconds_left(deadline)
    if left <= 0 or not _discovery_lock.acquire(timeout=min(left, threading.TIMEOUT_MAX)):
        raise ConnectTimeout("timed out waiting for PAC discovery")
    try:
        if _discovery_done:
            return _discovered
        tried: list[str] = []
        for candidate in _discovery_urls(deadline):
            shown = redact_url(candidate)
            tried.append(shown)
            try:
                script = _load(candidate, shown, _Shorter(deadline, DISCOVERY_TRY_TIMEOUT), options)
            except ConnectTimeout:
                if _seconds_left(deadline) <= 0:
                    raise
                logger.debug("PAC discovery: %s did not answer in time", shown)
                continue
            except ProxyError as exc:
                if isinstance(exc.__cause__, ImportError):
                    raise
                logger.debug("PAC discovery: %s is not usable: %s", shown, exc)
                continue
            logger.debug("PAC discovery found %s", shown)
            _discovered, _discovery_done = (candidate, script), True
            return _discovered
        logger.debug("PAC discovery found no PAC file (tried %s): connecting directly", tried or "nothing")
        _discovered, _discovery_done = None, True
        return None
    finally:
        _discovery_lock.release()


# discover_pac_urls() runs on a thread of its own, once per process: asking the OS (a
# gsettings process, the registry) and DNS (the machine's own name) can each hang. An
# opening waits for it only until its deadline; a later one waits for the same thread.
_urls_job: tuple[threading.Event, list[Any]] | None = None


def _discovery_urls(deadline: Any) -> list[str]:
    """:func:`discover_pac_urls` within ``deadline`` (the caller holds the discovery lock)."""
    global _urls_job
    if _urls_job is None:
        done = threading.Event()
        box: list[Any] = []

        def work() -> None:
            try:
                box.append(discover_pac_urls())
            except Exception as exc:  # handed to the waiting opening
                box.append(exc)
            finally:
                done.set()

        _urls_job = (done, box)
        threading.Thread(target=work, name="wsclient-pac-discovery", daemon=True).start()
    done, box = _urls_job
    if not done.wait(max(0.0, min(_seconds_left(deadline), threading.TIMEOUT_MAX))):
        raise ConnectTimeout("timed out discovering the PAC file (the OS setting, WPAD through DNS)")
    if isinstance(box[0], Exception):
        _urls_job = None  # the next opening asks again
        raise ProxyError(f"PAC discovery failed: {box[0]}") from box[0]
    return list(box[0])


def discover_pac_urls() -> list[str]:
    """The URLs where a PAC file may be, in the order ``proxies={"pac": "auto"}`` tries them.

    1. The operating system's setting: Windows' ``AutoConfigURL`` (registry), macOS'
       automatic proxy configuration URL, GNOME's ``org.gnome.system.proxy autoconfig-url``
       when its mode is ``auto``.
    2. WPAD through DNS: ``http://wpad.<domain>/wpad.dat`` for the machine's domain and each
       parent domain, stopping above the organisation's domain (pypac's WPAD helper checks
       the public suffix list, so no ``wpad.com``-style name is ever asked).

    DHCP-based WPAD (option 252) is not used: it needs a raw-socket DHCP query.
    """
    urls: list[str] = []
    setting = _os_pac_setting()
    if setting:
        if "://" not in setting:  # Windows and macOS accept a bare local path
            setting = urllib.parse.urljoin("file:", urllib.request.pathname2url(setting))
        urls.append(setting)
    try:
        from pypac.wpad import proxy_urls_from_dns  # type: ignore[import-not-found,import-untyped]

        urls += [url for url in proxy_urls_from_dns() if url not in urls]
    except ImportError:
        pass
    except Exception as exc:  # a strange host name must not break the connection
        logger.debug("PAC discovery: no WPAD URLs: %s", exc)
    return urls


def _os_pac_setting() -> str | None:
    import sys

    try:
        if sys.platform == "win32":
            from pypac.os_settings import autoconfig_url_from_registry

            return autoconfig_url_from_registry()  # type: ignore[no-any-return]
        if sys.platform == "darwin":
            from pypac.os_settings import autoconfig_url_from_preferences

            return autoconfig_url_from_preferences()  # type: ignore[no-any-return]
        return _gnome_pac_setting()
    except Exception as exc:  # ImportError, the OS API's own errors
        logger.debug("PAC discovery: cannot read the OS proxy setting: %s", exc)
        return None


def _gnome_pac_setting() -> str | None:
    import shutil
    import subprocess

    gsettings = shutil.which("gsettings")
    if gsettings is None:
        return None

    def get(key: str) -> str:
        done = subprocess.run(
            [gsettings, "get", "org.gnome.system.proxy", key],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
        return done.stdout.strip().strip("'") if done.returncode == 0 else ""

    if get("mode") != "auto":
        return None
    return get("autoconfig-url") or None


def _load(pac_url: str, shown: str, deadline: Any, options: Any) -> _Script:
    with _cache_lock:
        script = _cache.get(pac_url)
        if script is not None:
            return script
        url_lock = _url_locks.setdefault(pac_url, threading.Lock())
    # Wait for another thread's download of the same file, but not past our deadline.
    left = _seconds_left(deadline)
    if left <= 0 or not url_lock.acquire(timeout=min(left, threading.TIMEOUT_MAX)):
        raise ConnectTimeout(f"timed out waiting for the PAC file {shown}")
    try:
        with _cache_lock:
            script = _cache.get(pac_url)
        if script is not None:
            return script
        source = _fetch(pac_url, shown, deadline, options)
        script = _Script(source, shown, deadline)
        with _cache_lock:
            _cache[pac_url] = script
        logger.debug("loaded the PAC file %s (%d bytes)", shown, len(source))
        return script
    finally:
        url_lock.release()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _fetch(pac_url: str, shown: str, deadline: Any, options: Any) -> str:
    """The text of the PAC file (downloaded directly: a PAC never goes through a proxy)."""
    scheme = urllib.parse.urlsplit(pac_url).scheme.lower()
    if scheme == "file":
        path = urllib.request.url2pathname(urllib.parse.urlsplit(pac_url).path)
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_PAC_SIZE + 1)
        except OSError as exc:
            raise ProxyError(f"cannot read the PAC file {shown}: {exc.strerror or exc}") from exc
        if len(data) > MAX_PAC_SIZE:
            raise ProxyError(f"the PAC file {shown} is larger than {MAX_PAC_SIZE} bytes")
        return _decode(data)
    if scheme not in ("http", "https"):
        raise ProxyError(f"unsupported PAC URL {shown!r}: use http://, https:// or file://")
    return _decode(_download(pac_url, shown, deadline, options))


def _download(pac_url: str, shown: str, deadline: Any, options: Any) -> bytes:
    """GET the PAC file directly (a PAC file never goes through a proxy), following up to
    :data:`MAX_PAC_REDIRECTS` redirects. Every step (the name lookup, TCP, TLS, each read
    and write) waits only for the time left before ``deadline``: a server that trickles its
    answer cannot hold the opening past its ``timeout``."""
    left = _seconds_left(deadline)
    bound = Deadline(None if left == float("inf") else max(left, 0.0))
    url = pac_url
    for _hop in range(MAX_PAC_REDIRECTS + 1):
        response = _get(url, shown, bound, options)
        location = response.headers.get("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            url = urllib.parse.urljoin(url, location.strip())
            if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                raise ProxyError(f"cannot fetch the PAC file {shown}: redirected to {redact_url(url)!r}")
            continue
        if response.status != 200:
            raise ProxyError(
                f"cannot fetch the PAC file {shown}: the server answered {response.status} {response.reason}".rstrip()
            )
        if len(response.body) > MAX_PAC_SIZE:
            raise ProxyError(f"the PAC file {shown} is larger than {MAX_PAC_SIZE} bytes")
        return response.body
    raise ProxyError(f"cannot fetch the PAC file {shown}: more than {MAX_PAC_REDIRECTS} redirects")


def _get(url: str, shown: str, bound: Deadline, options: Any) -> Response:
    """One GET of ``url`` on a new connection, read within ``bound``."""
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme.lower() == "https"
    what = f"fetching the PAC file {shown}"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError as exc:
        raise ProxyError(f"cannot fetch the PAC file {shown}: {exc}") from exc
    host = parts.hostname or ""
    target = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    authority = f"[{host}]" if ":" in host else host
    if parts.port:
        authority += f":{port}"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n"
        "Accept: application/x-ns-proxy-autoconfig, */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii", "replace")
    sock: Any = None
    try:
        with map_errors(
            {
                TimeoutError: lambda e: ConnectTimeout(f"timed out {what}"),  # ConnectTimeout too
                ConnectFailed: lambda e: ProxyError(f"cannot fetch the PAC file {shown}: {e}"),
                ssl.SSLCertVerificationError: lambda e: ProxyError(
                    f"cannot fetch the PAC file {shown}: TLS certificate verification failed: {e.verify_message or e}"
                ),
                ssl.SSLError: lambda e: ProxyError(f"cannot fetch the PAC file {shown}: TLS error: {e.reason or e}"),
                HTTPParseError: lambda e: ProxyError(f"cannot fetch the PAC file {shown}: {e}"),
                OSError: lambda e: ProxyError(f"cannot fetch the PAC file {shown}: {e.strerror or e}"),
            },
            passthrough=False,
        ):
            sock = open_tcp(host, port, bound, what=f"the PAC server {authority}")
            # Blocking mode: recv_within() and send_within() then wait with poll() for the
            # time left (with a socket timeout each read would wait that whole timeout).
            sock.settimeout(None)
            if https:
                # The transport hands the TLS context factory down (proxy/ never imports
                # it): the PAC server is verified like the target, with the same trust.
                factory = getattr(options, "make_ssl_context", None)
                context = factory() if factory is not None else ssl.create_default_context()
                sock.settimeout(bound.timeout(what))  # the handshake keeps to it as a whole
                sock = context.wrap_socket(sock, server_hostname=host)
            send_within(sock, request, bound, what)
            reader = ResponseReader(max_body=MAX_PAC_SIZE + 1)
            while True:
                data = recv_within(sock, 64 * 1024, bound, what)
                response = reader.receive_data(data) if data else reader.receive_eof()
                if response is not None:
                    return response
    finally:
        if sock is not None:
            sock.close()


def _forget_in_child() -> None:
    # A fork child must not talk to (or kill) the parent's evaluator processes, nor wait on
    # a lock a parent thread held at the fork: it starts with none.
    global _cache, _url_locks, _cache_lock, _discovered, _discovery_done, _discovery_lock, _urls_job
    _cache, _url_locks, _cache_lock = {}, {}, threading.Lock()
    _discovered, _discovery_done, _discovery_lock = None, False, threading.Lock()
    _urls_job = None  # the parent's discovery thread does not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
