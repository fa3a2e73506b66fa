"""Placeholder for PAC support (``proxies={"pac": URL}``), replaced at merge by the real
module; until then a ``"pac"`` key is accepted and refused here with a clear error."""

from __future__ import annotations

from .._net import Deadline
from ..exceptions import ProxyError
from ..uri import WSURI
from .url import ProxyURL

__all__ = ["resolve_pac"]


def resolve_pac(
    pac_url: str, uri: WSURI, deadline: Deadline, options: object
) -> tuple[tuple[ProxyURL | None, ...], str]:
    """The PAC file's candidates for ``uri`` and the reason; not available in this build."""
    raise ProxyError("PAC support is not installed")
