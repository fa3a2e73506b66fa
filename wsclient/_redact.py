"""Masking of credentials in text meant for people: log lines, ``-v`` traces, messages.

Kept apart from the modules that log so that the library's DEBUG lines and the command
line's trace filter mask the same things the same way.
"""

from __future__ import annotations

import re

__all__ = ["SECRET_HEADERS", "mask_head", "mask_text"]

#: Header fields whose values are credentials (lower case).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

# "Name: value" at the start of a line, for the header fields above. The auth scheme word
# (Basic, Digest, NTLM, Negotiate, Bearer) is kept: it is what a person debugging needs.
_HEADER_LINE = re.compile(
    r"(?im)^(?P<name>(?:proxy-)?authorization|cookie|set-cookie)(?P<sep>[ \t]*:[ \t]*)(?P<value>[^\r\n]*)"
)
# scheme://user:pass@host -> scheme://***@host (any scheme: ws, wss, http, https, socks5...).
_URL_USERINFO = re.compile(r"(?i)\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")


def _mask_value(name: str, value: str) -> str:
    if name.lower().endswith("authorization"):
        scheme, _, rest = value.partition(" ")
        if rest:
            return f"{scheme} ***"
    return "***"


def mask_head(text: str) -> str:
    """Mask the values of credential header fields in an HTTP head (one field a line)."""
    return _HEADER_LINE.sub(
        lambda m: f"{m['name']}{m['sep']}{_mask_value(m['name'], m['value'])}", text
    )


def mask_text(text: str) -> str:
    """Mask credential header values and the user information of URLs in ``text``."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}***@", mask_head(text))
