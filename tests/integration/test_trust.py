"""Trust sources (issue 9): the environment's CA variables, verify="system", SSLKEYLOGFILE.

The server certificates come from a trustme CA that certifi does not hold: a connection
with ``verify=True`` succeeds only when the source under test supplied that CA.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wsclient
from wsclient import TLSError
from wsclient.transport.tls import make_ssl_context, trust_source

ROOT = Path(__file__).resolve().parents[2]
CA_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: .ci/install.sh must install it")
    pytest.skip(f"{what} is missing")


def _truststore() -> Any:
    try:
        import truststore
    except ImportError:
        _missing("truststore (pip install truststore)")
    return truststore


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with none of the variables set (the CI machine may set some)."""
    for name in CA_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def hashed_ca_dir(tmp_path_factory: pytest.TempPathFactory, ca_path: str) -> str:
    """A directory in OpenSSL's hashed layout (``<subject hash>.0``) holding the test CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        _missing("openssl (apt-get install openssl)")
    directory = tmp_path_factory.mktemp("hashed-ca")
    digest = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", ca_path], check=True, capture_output=True, text=True
    ).stdout.strip()
    shutil.copy(ca_path, directory / f"{digest}.0")
    return str(directory)


def _echo(url: str, **kwargs: Any) -> None:
    with wsclient.connect(url, timeout=10, **kwargs) as ws:
        ws.send("trusted")
        assert ws.recv(timeout=10) == "trusted"


# --------------------------------------------------------------------------- each variable


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_each_ca_file_variable_makes_wss_verify(
    variable: str, monkeypatch: pytest.MonkeyPatch, websockets_tls_server: Any, ca_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsclient")
    with pytest.raises(TLSError):  # certifi alone does not trust the test CA
        _echo(websockets_tls_server.url())
    monkeypatch.setenv(variable, ca_path)
    _echo(websockets_tls_server.url())
    # The DEBUG log says which source verified it.
    assert any(f"{variable}={ca_path}" in r.getMessage() for r in caplog.records)
    # trust_env=False: the variable is ignored again.
    with pytest.raises(TLSError):
        _echo(websockets_tls_server.url(), trust_env=False)


@pytest.mark.parametrize("variable", ["SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"])
def test_a_hashed_ca_directory_makes_wss_verify(
    variable: str, monkeypatch: pytest.MonkeyPatch, node_tls_server: Any, hashed_ca_dir: str
) -> None:
    monkeypatch.setenv(variable, hashed_ca_dir)
    _echo(node_tls_server.url())


@pytest.mark.parametrize(
    ("winner", "loser"),
    [
        ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"),
        ("CURL_CA_BUNDLE", "SSL_CERT_FILE"),
    ],
)
def test_the_order_of_the_variables(
    winner: str, loser: str, monkeypatch: pytest.MonkeyPatch, websockets_tls_server: Any,
    ca_path: str, other_ca_path: str,
) -> None:
    monkeypatch.setenv(winner, ca_path)
    monkeypatch.setenv(loser, other_ca_path)
    _echo(websockets_tls_server.url())
    monkeypatch.setenv(winner, other_ca_path)
    monkeypatch.setenv(loser, ca_path)
    with pytest.raises(TLSError):
        _echo(websockets_tls_server.url())


def test_an_explicit_verify_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, websockets_tls_server: Any, ca_path: str, other_ca_path: str
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other_ca_path)
    _echo(websockets_tls_server.url(), verify=ca_path)


def test_a_missing_ca_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, websockets_tls_server: Any) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(TLSError) as info:
        _echo(websockets_tls_server.url())
    assert "REQUESTS_CA_BUNDLE" in str(info.value)


# --------------------------------------------------------------------------- SSLKEYLOGFILE


def test_sslkeylogfile_gets_the_session_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, websockets_tls_server: Any, ca_path: str
) -> None:
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    _echo(websockets_tls_server.url(), verify=ca_path)
    text = keylog.read_text()
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in text or "CLIENT_RANDOM" in text
    other = tmp_path / "other.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(other))
    _echo(websockets_tls_server.url(), verify=ca_path, trust_env=False)
    assert not other.exists() or other.stat().st_size == 0


# --------------------------------------------------------------------------- verify="system"


def test_system_trust_does_not_use_certifi_or_the_test_ca(websockets_tls_server: Any) -> None:
    """truststore is installed: the OS store is consulted, and it does not hold the test CA."""
    _truststore()
    with pytest.raises(TLSError):
        _echo(websockets_tls_server.url(), verify="system")


def test_system_trust_with_the_ca_in_the_os_store(websockets_tls_server: Any, ca_path: str) -> None:
    """The test CA installed in Debian's store (then removed): verify="system" trusts it.

    Run in a subprocess with SSL_CERT_FILE/SSL_CERT_DIR unset, so that OpenSSL's default
    paths (what truststore uses on Linux) are what verifies.
    """
    _truststore()
    update = shutil.which("update-ca-certificates")
    if update is None or os.geteuid() != 0 or not Path("/usr/local/share/ca-certificates").is_dir():
        _missing("root and update-ca-certificates (to put a CA in the OS store)")
    assert update is not None
    installed = Path("/usr/local/share/ca-certificates") / f"wsclient-test-{os.getpid()}.crt"
    shutil.copy(ca_path, installed)
    try:
        subprocess.run([update], check=True, capture_output=True, timeout=120)
        code = (
            "import sys, wsclient\n"
            "with wsclient.connect(sys.argv[1], verify='system', timeout=10) as ws:\n"
            "    ws.send('os store'); print(ws.recv(timeout=10))\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in CA_VARS}
        env["PYTHONPATH"] = str(ROOT)
        result = subprocess.run(
            [sys.executable, "-c", code, websockets_tls_server.url()],
            capture_output=True, text=True, timeout=60, env=env,
        )
    finally:
        installed.unlink()
        subprocess.run([update, "--fresh"], check=False, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "os store"


_BLOCKED = (
    "import sys, json, socket\n"
    "sys.modules['truststore'] = None  # as if it were not installed\n"
    "import wsclient\n"
    "out = {}\n"
    "try:\n"
    "    wsclient.connect(sys.argv[1], verify=sys.argv[2] == 'v' and 'system' or True,\n"
    "                     request_options={'proxy_verify': 'system'} if sys.argv[2] == 'p' else None,\n"
    "                     proxies={'all': sys.argv[3]} if sys.argv[2] == 'p' else {}, timeout=5)\n"
    "except ImportError as exc:\n"
    "    out['error'] = str(exc)\n"
    "print(json.dumps(out))\n"
)


@pytest.mark.parametrize("which", ["v", "p"], ids=["verify", "proxy_verify"])
def test_system_trust_without_truststore_raises_import_error_before_any_socket(which: str) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        result = subprocess.run(
            [sys.executable, "-c", _BLOCKED, f"wss://127.0.0.1:{port}/", which, f"https://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert result.returncode == 0, result.stderr
        error = json.loads(result.stdout)["error"]
        assert "wsclient[truststore]" in error
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


# --------------------------------------------------------------------------- trust_source


def test_trust_source_descriptions(tmp_path: Path, ca_path: str) -> None:
    import ssl

    import certifi

    assert trust_source(ssl.create_default_context(), True) == "the ssl_context given"
    assert trust_source(False, True) == "verification disabled"
    assert trust_source("system", True) == "system trust store (truststore)"
    assert trust_source(ca_path, True) == f"CA bundle {ca_path}"
    assert trust_source(str(tmp_path), True) == f"CA directory {tmp_path}"
    default = trust_source(True, True, environ={})
    assert default.startswith("certifi ") and certifi.where() in default
    env = {"REQUESTS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/b.pem", "SSL_CERT_FILE": "/c.pem"}
    assert trust_source(True, True, environ=env) == "REQUESTS_CA_BUNDLE=/a.pem"
    assert trust_source(True, False, environ=env) == default
    assert trust_source(True, True, environ={"SSL_CERT_FILE": "/c.pem", "SSL_CERT_DIR": "/d"}) == (
        "SSL_CERT_FILE=/c.pem SSL_CERT_DIR=/d"
    )
    assert trust_source(True, True, environ={"REQUESTS_CA_BUNDLE": ""}) == default


def test_make_ssl_context_system_is_a_truststore_context() -> None:
    truststore = _truststore()
    ctx = make_ssl_context("system")
    assert isinstance(ctx, truststore.SSLContext)
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname
