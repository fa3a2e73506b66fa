"""The ``wsclient`` command through squid with Basic authentication."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # clirunner, in tests/integration

from clirunner import run_cli
from proxypeers import BASIC_PASSWORD, USER


def _secrets() -> list[str]:
    token = base64.b64encode(f"{USER}:{BASIC_PASSWORD}".encode()).decode()
    return [BASIC_PASSWORD, token, "S3cret%3Apass"]


def test_through_squid_basic_with_verbose_trace_masking_the_password(squid_basic: Any, ws_target: Any) -> None:
    proxy = squid_basic.url("http", USER, BASIC_PASSWORD)
    result = run_cli(ws_target.url(), "--proxy", proxy, "-v", "-x", "through squid", "-w", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "through squid\n"
    err = result.stderr
    assert f"CONNECT 127.0.0.1:{ws_target.port}" in err
    assert "Basic" in err and "407" in err  # the proxy exchange: challenge, then the retry
    assert "HTTP/1.1 101 Switching Protocols" in err
    for secret in _secrets():
        assert secret not in err, secret
    squid_basic.wait_log(f"TCP_TUNNEL/200 CONNECT 127.0.0.1:{ws_target.port} user={USER}")


def test_proxy_from_the_environment_and_no_proxy(squid_basic: Any, ws_target: Any) -> None:
    from clirunner import cli_env

    env = cli_env(WS_PROXY=squid_basic.url("http", USER, BASIC_PASSWORD))
    via_env = run_cli(ws_target.url(), "-x", "env", "-w", "0.5", env=env)
    assert (via_env.returncode, via_env.stdout) == (0, "env\n"), via_env.stderr
    before = len(ws_target.seen)
    direct = run_cli(ws_target.url(), "--no-proxy", "-x", "direct", "-w", "0.5", env=env)
    assert (direct.returncode, direct.stdout) == (0, "direct\n"), direct.stderr
    assert len(ws_target.seen) == before + 1


def test_407_without_credentials_exits_1(squid_basic: Any, ws_target: Any) -> None:
    result = run_cli(ws_target.url(), "--proxy", squid_basic.url(), "-x", "x")
    assert result.returncode == 1
    assert result.stderr.startswith("wsclient: error: ") and "407" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_diagnose_through_the_proxy(squid_basic: Any, ws_target: Any) -> None:
    ok = run_cli("--diagnose", ws_target.url(), "--proxy", squid_basic.url("http", USER, BASIC_PASSWORD))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("ping: ok (")
    for secret in _secrets():
        assert secret not in ok.stdout
    refused = run_cli("--diagnose", ws_target.url(), "--proxy", squid_basic.url())
    assert refused.returncode == 1
    lines = refused.stdout.splitlines()
    assert ": FAILED (" in lines[-2] and "407" in lines[-2]
    assert lines[-1].startswith("hint: ")
