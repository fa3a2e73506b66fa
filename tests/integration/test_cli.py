"""The ``wsclient`` command, run as a subprocess against the loopback servers.

Proxy cases (squid with Basic auth, ``-v`` masking) are in ``proxy/test_cli_proxy.py``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clirunner import cli_command, cli_env, run_cli

STAGE_LINE = re.compile(r"^(proxy|dns|tcp|proxy_tls|proxy_connect|tls|handshake|ping): (ok|FAILED) \(\d+(\.\d+)? ms\)")


def peer_args(peer: Any) -> list[str]:
    return ["--ca", peer.ca_path] if peer.scheme == "wss" else []


# --------------------------------------------------------------------------- modes


def test_execute_prints_the_replies(peer: Any) -> None:
    url = peer.url()
    result = run_cli(url, *peer_args(peer), "-x", "hello", "-x", "été ✓", "-w", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "été ✓"]
    assert result.stderr == ""
    assert peer.wait_event("close", url)["code"] == 1000


def test_piped_stdin_lines_are_sent_one_by_one(plain_peer: Any) -> None:
    url = plain_peer.url()
    started = time.monotonic()
    result = run_cli(url, "-w", "1", input="one\ntwo\r\n\nthree")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["one", "two", "", "three"]
    assert plain_peer.wait_event("close", url)["code"] == 1000
    assert elapsed < 1 + 10, "stdin's end then -w 1 should close promptly"


def test_binary_messages_are_printed_as_hex(plain_peer: Any) -> None:
    url = plain_peer.url("/flood", count=2, size=6)
    result = run_cli(url, "-w", "5", input=None, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    # 4-byte big-endian index, then the filler byte (index % 251).
    assert result.stdout.splitlines() == ["000000000000", "000000010101"]


def test_header_subprotocol_and_origin_reach_the_server(plain_peer: Any) -> None:
    url = plain_peer.url("/headers")
    result = run_cli(
        url, "-H", "X-Wsclient-Test: yes please", "-H", "X-Other:2", "-s", "nope", "-s", "chat",
        "-o", "https://example.test", "-x", "after", "-w", "1",
    )
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    info = json.loads(first)
    assert info["headers"]["x-wsclient-test"] == "yes please"
    assert info["headers"]["x-other"] == "2"
    assert info["headers"]["origin"] == "https://example.test"
    assert info["protocol"] == "chat"
    assert rest == ["after"]


def test_no_compression_offers_no_extension(websockets_server: Any) -> None:
    url = websockets_server.url("/headers")
    result = run_cli(url, "--no-compression", "-w", "0.5", stdin=subprocess.DEVNULL, input=None)
    info = json.loads(result.stdout.splitlines()[0])
    assert "sec-websocket-extensions" not in info["headers"]
    result = run_cli(websockets_server.url("/headers"), "-w", "0.5", stdin=subprocess.DEVNULL, input=None)
    info = json.loads(result.stdout.splitlines()[0])
    assert "permessage-deflate" in info["headers"]["sec-websocket-extensions"]


def test_verbose_traces_the_handshake_with_credentials_masked(websockets_server: Any) -> None:
    url = websockets_server.url("/headers").replace("://", "://bob:Url-Secret-9@", 1)
    result = run_cli(
        url, "-v", "-H", "Cookie: session=Cookie-Secret-7", "-x", "x", "-w", "0.5",
    )
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "GET /headers?" in err and "HTTP/1.1 101 Switching Protocols" in err
    assert "Authorization: Basic ***" in err and "Cookie: ***" in err
    for secret in ("Url-Secret-9", "Cookie-Secret-7", "Ym9iOlVybC1TZWNyZXQtOQ"):  # the last: base64
        assert secret not in err
    # The server did get them.
    info = json.loads(result.stdout.splitlines()[0])
    assert info["headers"]["cookie"] == "session=Cookie-Secret-7"


def test_tls_options(websockets_tls_server: Any, other_ca_path: str) -> None:
    url = websockets_tls_server.url()
    ok = run_cli(url, "--ca", websockets_tls_server.ca_path, "-x", "tls", "-w", "0.5")
    assert (ok.returncode, ok.stdout) == (0, "tls\n"), ok.stderr
    insecure = run_cli(url, "-k", "-x", "tls", "-w", "0.5")
    assert (insecure.returncode, insecure.stdout) == (0, "tls\n"), insecure.stderr
    wrong = run_cli(url, "--ca", other_ca_path, "-x", "tls", "-w", "0.5")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("wsclient: error: ") and "Traceback" not in wrong.stderr
    assert "certificate" in wrong.stderr.lower()


# --------------------------------------------------------------------------- exit status


def test_exit_0_when_the_server_closes_normally(plain_peer: Any) -> None:
    url = plain_peer.url("/close", code=1000, reason="bye", count=2)
    result = run_cli(url, "-w", "10", stdin=subprocess.DEVNULL, input=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["message 0", "message 1"]


def test_exit_1_when_the_port_is_refused(refused_port: int) -> None:
    result = run_cli(f"ws://127.0.0.1:{refused_port}/", "-x", "x")
    assert result.returncode == 1
    assert result.stderr.startswith("wsclient: error: ")
    assert len(result.stderr.splitlines()) == 1 and "refused" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        [],  # no URL
        ["ws://127.0.0.1:1/", "--bogus"],
        ["ws://127.0.0.1:1/", "-H", "no colon here"],
        ["ws://127.0.0.1:1/", "--key", "k.pem"],
        ["ws://127.0.0.1:1/", "-w", "soon"],
        ["ws://127.0.0.1:1/", "--proxy", "http://p:1", "--no-proxy"],
        ["http://127.0.0.1:1/"],  # not a WebSocket URL
        ["ws://127.0.0.1:1/", "-H", "X-Bad\x01: 1"],  # not an HTTP field name
    ],
)
def test_exit_2_on_usage_errors(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "wsclient: error: " in result.stderr
    assert "Traceback" not in result.stderr


def test_exit_3_when_the_server_closes_abnormally(plain_peer: Any) -> None:
    url = plain_peer.url("/close", code=1011, reason="server broke", count=1)
    result = run_cli(url, "-w", "10", stdin=subprocess.DEVNULL, input=None)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "message 0\n"
    assert "1011" in result.stderr and "server broke" in result.stderr
    assert "Traceback" not in result.stderr


def test_exit_130_on_sigint(plain_peer: Any) -> None:
    url = plain_peer.url()
    proc = subprocess.Popen(
        cli_command(url, "-v"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write("before the interrupt\n")
        proc.stdin.flush()
        # stdin stays open: without the signal the command would wait for more input.
        assert proc.stdout.readline() == "before the interrupt\n"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=3.0 + 10) == 130  # close_timeout 5 at worst, plus slack
        assert time.monotonic() - started < 3.0 + 10
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert plain_peer.wait_event("close", url)["code"] == 1000


# --------------------------------------------------------------------------- interactive


def _chunks(fd: int, deadline: float) -> Iterator[bytes]:
    """The pty's output as it arrives, until the child closes the terminal or ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        yield chunk


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """Read the pty's output until ``needle`` appears (or fail after ``timeout``)."""
    data = b""
    for chunk in _chunks(fd, time.monotonic() + timeout):
        data += chunk
        if needle in data:
            return data
    raise AssertionError(f"{needle!r} not seen within {timeout} s; got {data!r}")


def _rest_of_output(fd: int) -> str:
    """What the terminal still holds after the child exited (for a failure's message)."""
    return b"".join(_chunks(fd, time.monotonic() + 2)).decode("utf-8", "replace")


def _take_terminal() -> None:
    # In the child: a new session whose controlling terminal is the pty on stdin, so that
    # the terminal turns a typed Ctrl-C into SIGINT for it, as a shell's terminal would.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _interactive(url: str) -> tuple[subprocess.Popen[bytes], int]:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        cli_command(url),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=cli_env(TERM="dumb"),
        preexec_fn=_take_terminal,
    )
    os.close(terminal)
    return proc, controller


def test_interactive_session_on_a_terminal(websockets_server: Any) -> None:
    url = websockets_server.url()
    proc, fd = _interactive(url)
    try:
        _read_until(fd, b"> ", 15)
        os.write(fd, b"hello from a terminal\n")
        _read_until(fd, b"< hello from a terminal", 10)
        os.write(fd, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    assert websockets_server.wait_event("close", url)["code"] == 1000


def test_interactive_ctrl_c_exits_130(websockets_server: Any) -> None:
    url = websockets_server.url()
    proc, fd = _interactive(url)
    try:
        _read_until(fd, b"> ", 15)
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
        status = proc.wait(timeout=10)
        assert status == 130, _rest_of_output(fd)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    assert websockets_server.wait_event("close", url)["code"] == 1000


# --------------------------------------------------------------------------- --diagnose


def test_diagnose_passes(peer: Any) -> None:
    result = run_cli("--diagnose", peer.url(), *peer_args(peer))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(STAGE_LINE.match(line) for line in lines), lines
    stages = [line.split(":", 1)[0] for line in lines]
    assert stages[-2:] == ["handshake", "ping"]
    assert all(": ok (" in line for line in lines)


def test_diagnose_fails_at_a_refused_port(refused_port: int) -> None:
    result = run_cli("--diagnose", f"ws://127.0.0.1:{refused_port}/")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert STAGE_LINE.match(lines[-2]) and ": FAILED (" in lines[-2]
    assert lines[-2].startswith("tcp: FAILED")
    assert lines[-1].startswith("hint: ")
    assert "Traceback" not in result.stderr


def test_diagnose_fails_on_the_wrong_ca(websockets_tls_server: Any, other_ca_path: str) -> None:
    result = run_cli("--diagnose", websockets_tls_server.url(), "--ca", other_ca_path)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if ": FAILED (" in line]
    assert len(failed) == 1 and STAGE_LINE.match(failed[0])
    assert failed[0].split(":", 1)[0] in ("tls", "handshake")
    assert result.stdout.splitlines()[-1].startswith("hint: ")


def test_help_says_how_binary_is_printed() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "hexadecimal" in result.stdout and "exit status" in result.stdout
    for option in ("-H", "-s", "-o", "--proxy", "--no-proxy", "--ca", "--cert", "--key", "-k",
                   "--system-trust", "--ping-interval", "--no-compression", "-x", "-w", "-v", "--diagnose"):
        assert option in result.stdout
