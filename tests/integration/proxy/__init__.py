"""Proxy integration tests (a package, so that this folder's conftest.py does not replace
the module ``conftest`` that tests/integration/ modules import from)."""
