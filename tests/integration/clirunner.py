"""Running the ``wsclient`` command as a subprocess (``sys.executable -m wsclient``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The repository root, put on the subprocess's PYTHONPATH so it imports this tree's wsclient.
ROOT = Path(__file__).resolve().parents[2]

#: Bound of one command run: the opening, -w and the close, with slack for a loaded machine.
RUN_TIMEOUT = 30.0


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``wsclient`` subprocess: no proxy variables, this tree first."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wsclient", *args]


def run_cli(*args: str, input: str | None = "", timeout: float = RUN_TIMEOUT, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``wsclient ARGS`` with ``input`` on its stdin (a pipe) and capture its output."""
    return subprocess.run(
        cli_command(*args),
        input=input,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        env=kwargs.pop("env", None) or cli_env(),
        cwd=kwargs.pop("cwd", None) or str(ROOT),
        **kwargs,
    )
