"""The Sans-I/O core imports nothing that does I/O or runs threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys

BLOCKED = {"socket", "ssl", "threading", "select", "selectors", "urllib3"}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the Sans-I/O core imported {name}")
        return None


# logging (which every module uses) imports threading for its own lock: load it first,
# then forget the blocked modules, so that an import of them by wsclient itself fails.
import logging  # noqa: F401

for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
sys.meta_path.insert(0, Blocker())

# The package's __init__ imports the whole library: load the core modules without it.
import importlib.util
import types

pkg = types.ModuleType("wsclient")
pkg.__path__ = [sys.argv[1]]
sys.modules["wsclient"] = pkg
for name in ("exceptions", "frames", "uri", "extensions", "extensions.permessage_deflate",
             "protocol", "handshake"):
    importlib.import_module(f"wsclient.{name}")

from wsclient.protocol import Protocol

proto = Protocol(mask=False, initial_data=b"\x81\x02hi")
assert proto.receive_data(b"") == ["hi"], "the core works with I/O blocked"
print("ok")
"""


def test_sans_io_core_imports_without_socket_ssl_or_threading() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "wsclient")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
