"""The dependency direction of the opening: ``transport -> proxy -> _net``, never back.

An AST check over every import (top-level or inside a function, TYPE_CHECKING included),
so a cycle cannot hide behind a function-local import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "wsclient"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the wsclient modules ``path`` imports."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # for __init__.py too: its package is its folder
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: list[str]) -> set[str]:
    """The wsclient modules (and names) that ``source``, living in ``package``, imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("wsclient")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("wsclient"):
                found.add(name)
                found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "proxy").glob("*.py")), ids=lambda p: p.name)
def test_proxy_never_imports_transport_or_client(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.startswith(("wsclient.transport", "wsclient.client"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", ["_net.py", "http11.py"])
def test_shared_primitives_import_neither(name: str) -> None:
    bad = {
        m for m in imported_modules(PACKAGE / name)
        if m.startswith(("wsclient.transport", "wsclient.proxy", "wsclient.client", "wsclient.connection"))
    }
    assert not bad, f"{name} imports {sorted(bad)}"


def test_the_check_sees_relative_and_local_imports() -> None:
    """The checker itself: a function-local relative import of the transport is caught."""
    source = "def f():\n    if True:\n        from ..transport.tls import make_ssl_context\n"
    assert "wsclient.transport.tls" in imports_in(source, ["wsclient", "proxy"])
    assert "wsclient.transport" in imports_in("from .. import transport\n", ["wsclient", "proxy"])
    assert "wsclient.transport" in imports_in("import wsclient.transport\n", ["wsclient", "proxy"])
