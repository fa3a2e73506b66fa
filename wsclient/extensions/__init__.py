"""WebSocket extensions. Only permessage-deflate (RFC 7692) exists."""

from __future__ import annotations

from .permessage_deflate import (
    DeflateOptions,
    NegotiationError,
    PerMessageDeflate,
    resolve_compression,
)

__all__ = ["DeflateOptions", "NegotiationError", "PerMessageDeflate", "resolve_compression"]
