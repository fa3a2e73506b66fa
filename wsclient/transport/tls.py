"""TLS contexts from ``verify``, ``cert`` and ``tls_options`` (certifi roots by default)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

from ..exceptions import TLSError

__all__ = ["make_ssl_context"]

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _version(value: Any) -> ssl.TLSVersion:
    if isinstance(value, ssl.TLSVersion):
        return value
    if isinstance(value, str) and value in _VERSIONS:
        return _VERSIONS[value]
    raise ValueError(f"unknown TLS version {value!r} (use ssl.TLSVersion or e.g. 'TLSv1_2')")


def make_ssl_context(
    verify: bool | str | ssl.SSLContext = True,
    cert: str | tuple[str, ...] | None = None,
    tls_options: Mapping[str, Any] | None = None,
) -> ssl.SSLContext:
    """Build the client TLS context.

    Args:
        verify: True (certifi's CA roots), False (no verification), a path to a CA bundle
            file or directory, or a ready ``ssl.SSLContext`` (returned as is).
        cert: client certificate: a path (cert and key in one file), ``(cert, key)`` or
            ``(cert, key, password)``.
        tls_options: ``ca_certs``, ``ca_cert_dir``, ``ca_cert_data``, ``certfile``,
            ``keyfile``, ``password``, ``ciphers``, ``minimum_version``, ``maximum_version``,
            ``check_hostname``, ``cert_reqs``, ``ssl_context``.
    """
    opts = dict(tls_options or {})
    if isinstance(opts.get("ssl_context"), ssl.SSLContext):
        return opts["ssl_context"]  # type: ignore[no-any-return]
    if isinstance(verify, ssl.SSLContext):
        return verify
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ca_file = opts.get("ca_certs")
    ca_dir = opts.get("ca_cert_dir")
    ca_data = opts.get("ca_cert_data")
    if isinstance(verify, str):
        if os.path.isdir(verify):
            ca_dir = verify
        else:
            ca_file = verify
    if verify is False or opts.get("cert_reqs") in (ssl.CERT_NONE, "CERT_NONE"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        if ca_file or ca_dir or ca_data:
            try:
                ctx.load_verify_locations(cafile=ca_file, capath=ca_dir, cadata=ca_data)
            except (OSError, ssl.SSLError) as exc:
                where = ca_file or ca_dir or "ca_cert_data"
                raise TLSError(f"cannot load CA certificates from {where!r}: {exc}") from exc
        else:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        if opts.get("check_hostname") is False:
            ctx.check_hostname = False
    certfile = opts.get("certfile")
    keyfile = opts.get("keyfile")
    password = opts.get("password")
    if cert is not None:
        if isinstance(cert, str):
            certfile = cert
        else:
            certfile = cert[0]
            keyfile = cert[1] if len(cert) > 1 else None
            password = cert[2] if len(cert) > 2 else None
    if certfile:
        try:
            ctx.load_cert_chain(certfile, keyfile, password)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                f"cannot load the client certificate {certfile!r}"
                + (f" / key {keyfile!r}" if keyfile else "")
                + f": {getattr(exc, 'reason', None) or exc} (a wrong password also shows here)"
            ) from exc
    if opts.get("ciphers"):
        ctx.set_ciphers(opts["ciphers"])
    if opts.get("minimum_version") is not None:
        ctx.minimum_version = _version(opts["minimum_version"])
    if opts.get("maximum_version") is not None:
        ctx.maximum_version = _version(opts["maximum_version"])
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
