"""The ``wsclient`` command (also ``python -m wsclient``), in the habits of wscat and websocat.

Modes:

* ``-x MESSAGE`` (repeatable): send these, print what arrives within ``-w`` seconds, close.
* stdin not a terminal: every line of stdin is sent as a text message; received messages go to
  stdout one a line; at stdin's end wait ``-w`` seconds for replies, then close.
* stdin a terminal: an interactive session (``> `` prompt, received messages printed after
  ``< ``); Ctrl-D closes with 1000, Ctrl-C closes and exits 130.
* ``--diagnose URL``: the opening walked stage by stage (see :mod:`wsclient.diagnose`).

Exit status: 0 normal close, 1 the opening failed, 2 usage error, 3 abnormal close,
130 interrupted. Expected failures print one ``wsclient: error: ...`` line, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__
from ._redact import mask_text
from .exceptions import ConnectFailed, ConnectionClosed, InvalidURL

__all__ = ["EXIT_ABNORMAL", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ABNORMAL = 3
EXIT_INTERRUPTED = 130

#: How often the receiving loop looks at the input side (stdin's end, Ctrl-D) while idle.
_POLL = 0.1

_DESCRIPTION = """\
Open a WebSocket connection and exchange text messages with it.

On a terminal, typed lines are sent and received messages are printed after "< "
(Ctrl-D closes with 1000; Ctrl-C closes and exits 130). When stdin is not a terminal,
each line of stdin is sent as one text message and each received message is written to
stdout on one line; binary messages are written as hexadecimal (two lowercase hex digits
a byte). At stdin's end, wsclient waits -w seconds for replies, then closes.
"""

_EPILOG = """\
exit status: 0 normal close, 1 the opening failed, 2 usage error,
3 the connection closed abnormally, 130 interrupted.

Proxies come from WS_PROXY / WSS_PROXY / HTTP(S)_PROXY / ALL_PROXY / NO_PROXY unless
--proxy or --no-proxy is given. Credentials in URLs and headers are masked in -v output.
"""


class UsageError(Exception):
    """A command-line value that argparse cannot check by itself."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wsclient`` command."""
    parser = argparse.ArgumentParser(
        prog="wsclient",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="ws:// or wss:// URL to connect to")
    parser.add_argument("--version", action="version", version=f"wsclient {__version__}")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="walk the opening stage by stage (proxy, DNS, TCP, TLS, handshake, ping), one timed "
        "line a stage, and say what to try at the first that fails",
    )

    conn = parser.add_argument_group("connection options")
    conn.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    conn.add_argument(
        "-s", "--subprotocol", action="append", default=[], metavar="SUBPROTOCOL",
        help="offer a subprotocol (repeatable, best first)",
    )
    conn.add_argument("-o", "--origin", metavar="ORIGIN", help="send this Origin header")
    proxy = conn.add_mutually_exclusive_group()
    proxy.add_argument(
        "--proxy", metavar="URL",
        help="proxy for this connection: http://, https://, socks4://, socks5://, socks5h:// "
        "(credentials as http://user:password@host:port); the environment is then ignored",
    )
    proxy.add_argument(
        "--no-proxy", action="store_true", help="connect directly, ignoring the proxy variables"
    )
    trust = conn.add_mutually_exclusive_group()
    trust.add_argument("--ca", metavar="FILE", help="verify the server with this CA bundle (file or directory)")
    trust.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    trust.add_argument(
        "--system-trust", action="store_true",
        help="verify with the operating system's trust store (needs python-wsclient[truststore])",
    )
    conn.add_argument("--cert", metavar="FILE", help="client certificate (PEM; may hold the key too)")
    conn.add_argument("--key", metavar="FILE", help="private key of --cert, when in its own file")
    conn.add_argument(
        "--ping-interval", type=_seconds, metavar="S",
        help="send a keepalive ping every S seconds (default 20; 0 disables keepalive)",
    )
    conn.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    conn.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S",
        help="bound of the whole opening: TCP, proxy, TLS, handshake (default 10)",
    )

    session = parser.add_argument_group("session options")
    session.add_argument(
        "-x", "--execute", action="append", default=[], metavar="MESSAGE",
        help="send MESSAGE (repeatable), print what arrives within -w seconds, then close",
    )
    session.add_argument(
        "-w", "--wait", type=_seconds, default=2.0, metavar="SECONDS",
        help="after -x or stdin's end, how long to wait for replies before closing (default 2)",
    )
    session.add_argument(
        "-v", "--verbose", action="store_true",
        help="trace the handshake and the proxy exchange on stderr (credentials masked)",
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def connect_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`wsclient.connect` that the options ask for.

    Raises:
        UsageError: a malformed ``-H`` value, or ``--key`` without ``--cert``.
    """
    headers: list[tuple[str, str]] = []
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"argument -H/--header: expected 'Name: value', got {mask_text(item)!r}")
        headers.append((name.strip(), value.strip()))
    kwargs: dict[str, Any] = {"timeout": args.timeout}
    if headers:
        kwargs["headers"] = headers
    if args.subprotocol:
        kwargs["subprotocols"] = list(args.subprotocol)
    if args.origin is not None:
        kwargs["origin"] = args.origin
    if args.proxy is not None:
        kwargs["proxies"] = {"ws": args.proxy, "wss": args.proxy}
    elif args.no_proxy:
        kwargs["proxies"] = {}
    if args.ca is not None:
        kwargs["verify"] = args.ca
    elif args.insecure:
        kwargs["verify"] = False
    elif args.system_trust:
        kwargs["verify"] = "system"
    if args.key is not None and args.cert is None:
        raise UsageError("argument --key: needs --cert")
    if args.cert is not None:
        kwargs["cert"] = (args.cert, args.key) if args.key is not None else args.cert
    if args.ping_interval is not None:
        kwargs["ping_interval"] = args.ping_interval or None
    if args.no_compression:
        kwargs["compression"] = None
    return kwargs


class _MaskingFilter(logging.Filter):
    """Masks credentials in every record that reaches the ``-v`` handler.

    The library already masks its own DEBUG lines; this is the second belt, for any
    record (of any module, with any arguments) that reaches the user's terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def _enable_trace(stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("* %(message)s"))
    handler.addFilter(_MaskingFilter())
    logger = logging.getLogger("wsclient")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def _error(message: str, stream: TextIO) -> None:
    stream.write(f"wsclient: error: {mask_text(message)}\n")
    stream.flush()


def _format(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    return message.hex()


class _Input:
    """Reads stdin on a daemon thread and sends each line; says when stdin ended.

    A daemon thread, because a blocking read of a terminal or a pipe cannot be interrupted
    portably: when the connection ends first, the process exits with the read pending.
    """

    def __init__(self, ws: Any, stream: TextIO, out: TextIO, prompt: bool) -> None:
        self.ended = threading.Event()
        self._ws = ws
        self._stream = stream
        self._out = out
        self._prompt = prompt
        self._lock = threading.Lock()  # guards the terminal's output (prompt vs received lines)
        self._thread = threading.Thread(target=self._run, name="wsclient-cli-stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write_received(self, text: str) -> None:
        with self._lock:
            if self._prompt:
                # Received while the user types: on its own line, then the prompt again.
                self._out.write(f"\r< {text}\n> ")
            else:
                self._out.write(text + "\n")
            self._out.flush()

    def _run(self) -> None:
        try:
            while True:
                if self._prompt:
                    with self._lock:
                        self._out.write("> ")
                        self._out.flush()
                line = self._stream.readline()
                if not line:
                    return
                text = line[:-1] if line.endswith("\n") else line
                if text.endswith("\r"):
                    text = text[:-1]
                try:
                    self._ws.send(text)
                except ConnectionClosed:
                    return
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            logging.getLogger("wsclient.cli").debug("stdin: %s", exc)
        finally:
            if self._prompt:
                with self._lock:
                    self._out.write("\n")
                    self._out.flush()
            self.ended.set()


def _session(
    ws: Any, args: argparse.Namespace, stdin: TextIO, stdout: TextIO
) -> int:
    """Exchange messages until the input ends (plus ``-w``) or the connection closes."""
    interactive = not args.execute and stdin.isatty()
    input_side: _Input | None = None
    if args.execute:
        for message in args.execute:
            ws.send(message)
        end_at: float | None = time.monotonic() + args.wait
    else:
        input_side = _Input(ws, stdin, stdout, prompt=interactive)
        input_side.start()
        end_at = None

    def emit(message: str | bytes) -> None:
        text = _format(message)
        if input_side is not None:
            input_side.write_received(text)
        else:
            stdout.write(text + "\n")
            stdout.flush()

    while True:
        if end_at is None and input_side is not None and input_side.ended.is_set():
            # Ctrl-D on a terminal closes at once; a pipe's end leaves -w for the replies.
            end_at = time.monotonic() + (0.0 if interactive else args.wait)
        if end_at is None:
            timeout = _POLL
        else:
            timeout = max(0.0, end_at - time.monotonic())
            if input_side is not None:
                timeout = min(timeout, _POLL) if timeout > 0 else 0.0
        try:
            message = ws.recv(timeout=timeout)
        except TimeoutError:
            if end_at is not None and time.monotonic() >= end_at:
                break
            continue
        except ConnectionClosed:
            break
        emit(message)
    ws.close(1000)
    return _close_status(ws, stdout)


def _close_status(ws: Any, stdout: TextIO) -> int:
    code = ws.close_code
    if code in (1000, 1001):
        return EXIT_OK
    _error(
        f"the connection closed abnormally: code {code}"
        + (f", reason {ws.close_reason!r}" if ws.close_reason else ""),
        sys.stderr,
    )
    return EXIT_ABNORMAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a usage message on a usage error
    try:
        kwargs = connect_kwargs(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _error(str(exc), sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        _enable_trace(sys.stderr)
    ws = None
    try:
        if args.diagnose:
            from . import diagnose

            return diagnose.run(args.url, kwargs, sys.stdout)
        from .api import connect

        try:
            ws = connect(args.url, **kwargs)
        except InvalidURL as exc:
            # A typo in the URL or the proxy URL: a usage error, not a network failure.
            _error(str(exc), sys.stderr)
            return EXIT_USAGE
        except ConnectFailed as exc:
            _error(str(exc), sys.stderr)
            return EXIT_FAILED
        except (ValueError, TypeError) as exc:
            # A header, origin or subprotocol that cannot go on the wire, a bad option value.
            parser.print_usage(sys.stderr)
            _error(str(exc), sys.stderr)
            return EXIT_USAGE
        except ImportError as exc:
            # --system-trust without the truststore extra: the message names the extra.
            _error(str(exc), sys.stderr)
            return EXIT_FAILED
        return _session(ws, args, sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        if ws is not None:
            _close_interrupted(ws)
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed by the reader (`wsclient ... | head -1`): not an error of ours.
        if ws is not None:
            ws.drop(1000)
        _silence_stdout()
        return EXIT_OK


def _close_interrupted(ws: Any) -> None:
    """Close after Ctrl-C; a second Ctrl-C (or any failure) drops the connection instead.

    Nothing here may raise: the exit status is 130 whatever happens on the way out.
    """
    log = logging.getLogger("wsclient.cli")
    try:
        ws.close(1000)
        return
    except (Exception, KeyboardInterrupt) as exc:  # a second Ctrl-C: leave at once
        log.debug("close after Ctrl-C: %r", exc)
    try:
        ws.drop()
    except (Exception, KeyboardInterrupt) as exc:
        log.debug("drop after Ctrl-C: %r", exc)


def _silence_stdout() -> None:
    # Python flushes stdout at exit; with the pipe gone that would print a second error.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run() -> None:
    """Entry point of the console script."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
