"""TLS contexts from ``verify``, ``cert`` and ``tls_options``, and where their trust comes from.

``verify=True`` trusts, in order (the first that is set wins):

1. ``tls_options["ca_certs"]`` / ``ca_cert_dir`` / ``ca_cert_data`` (given in code);
2. with ``trust_env``: ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE`` (a file or a
   directory, as requests reads them), then ``SSL_CERT_FILE`` and/or ``SSL_CERT_DIR``
   (OpenSSL's names, read together);
3. certifi's roots.

Companies that inspect TLS put their root CA in one of those variables (or in the operating
system's store: ``verify="system"``, through the ``truststore`` package), which is why
certifi alone is not enough. ``SSLKEYLOGFILE`` (with ``trust_env``) makes the context write
its session keys there, for Wireshark.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any

from ..exceptions import TLSError

__all__ = ["SYSTEM", "make_ssl_context", "require_truststore", "trust_source"]

logger = logging.getLogger("wsclient.transport.tls")

#: The ``verify`` value that asks for the operating system's trust store.
SYSTEM = "system"

_TRUSTSTORE_MISSING = (
    'verify="system" needs the truststore package: pip install "python-wsclient[truststore]"'
)


def require_truststore() -> Any:
    """Import and return ``truststore``.

    Raises:
        ImportError: truststore is not installed; the message names the extra to install.
    """
    try:
        import truststore
    except ImportError as exc:
        raise ImportError(_TRUSTSTORE_MISSING, name="truststore") from exc
    return truststore


def _env_trust(environ: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    """(description, CA file, CA directory) from the environment, or None."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = environ.get(name)
        if value:
            if os.path.isdir(value):
                return f"{name}={value}", None, value
            return f"{name}={value}", value, None
    ca_file = environ.get("SSL_CERT_FILE") or None
    ca_dir = environ.get("SSL_CERT_DIR") or None
    if ca_file or ca_dir:
        parts = [f"SSL_CERT_FILE={ca_file}"] if ca_file else []
        parts += [f"SSL_CERT_DIR={ca_dir}"] if ca_dir else []
        return " ".join(parts), ca_file, ca_dir
    return None


def _certifi() -> tuple[str, str]:
    import certifi

    version = getattr(certifi, "__version__", "")
    where: str = certifi.where()
    return f"certifi {version} ({where})".replace("  ", " "), where


def trust_source(
    verify: bool | str | ssl.SSLContext,
    trust_env: bool,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Say in words which roots ``verify`` trusts: what ``make_ssl_context`` will load.

    Returns e.g. ``"certifi 2026.05.20 (/path/cacert.pem)"``, ``"REQUESTS_CA_BUNDLE=/path"``,
    ``"system trust store (truststore)"``, ``"verification disabled"``,
    ``"the ssl_context given"`` or ``"CA bundle /path"``.
    """
    if isinstance(verify, ssl.SSLContext):
        return "the ssl_context given"
    if verify is False:
        return "verification disabled"
    if verify == SYSTEM:
        return "system trust store (truststore)"
    if isinstance(verify, str):
        kind = "CA directory" if os.path.isdir(verify) else "CA bundle"
        return f"{kind} {verify}"
    if trust_env:
        found = _env_trust(os.environ if environ is None else environ)
        if found is not None:
            return found[0]
    return _certifi()[0]

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
    *,
    trust_env: bool = True,
) -> ssl.SSLContext:
    """Build the client TLS context.

    Args:
        verify: True (``tls_options`` CAs, else the environment's CA variables when
            ``trust_env``, else certifi's roots), ``"system"`` (the operating system's store,
            through truststore), False (no verification), a path to a CA bundle file or
            directory, or a ready ``ssl.SSLContext`` (returned as is).
        cert: client certificate: a path (cert and key in one file), ``(cert, key)`` or
            ``(cert, key, password)``.
        tls_options: ``ca_certs``, ``ca_cert_dir``, ``ca_cert_data``, ``certfile``,
            ``keyfile``, ``password``, ``ciphers``, ``minimum_version``, ``maximum_version``,
            ``check_hostname``, ``cert_reqs``, ``ssl_context``.
        trust_env: read ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``,
            ``SSL_CERT_DIR`` and ``SSLKEYLOGFILE``.

    Raises:
        TLSError: a CA or certificate file cannot be loaded.
        ImportError: ``verify="system"`` without truststore installed.
    """
    opts = dict(tls_options or {})
    if isinstance(opts.get("ssl_context"), ssl.SSLContext):
        return opts["ssl_context"]  # type: ignore[no-any-return]
    if isinstance(verify, ssl.SSLContext):
        return verify
    ca_file = opts.get("ca_certs")
    ca_dir = opts.get("ca_cert_dir")
    ca_data = opts.get("ca_cert_data")
    source = "tls_options" if (ca_file or ca_dir or ca_data) else None
    if verify == SYSTEM:
        ctx: ssl.SSLContext = require_truststore().SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        source = source or trust_source(verify, trust_env)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if isinstance(verify, str) and verify != SYSTEM:
        if os.path.isdir(verify):
            ca_dir = verify
        else:
            ca_file = verify
        source = trust_source(verify, trust_env)
    if verify is False or opts.get("cert_reqs") in (ssl.CERT_NONE, "CERT_NONE"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        source = "verification disabled"
    else:
        if verify is True and source is None and trust_env:
            found = _env_trust(os.environ)
            if found is not None:
                source, ca_file, ca_dir = found
        if ca_file or ca_dir or ca_data:
            try:
                ctx.load_verify_locations(cafile=ca_file, capath=ca_dir, cadata=ca_data)
            except (OSError, ssl.SSLError) as exc:
                where = ca_file or ca_dir or "ca_cert_data"
                raise TLSError(
                    f"cannot load CA certificates from {where!r}"
                    + (f" (from {source})" if source and source != "tls_options" else "")
                    + f": {exc}"
                ) from exc
        elif verify != SYSTEM:
            source, where = _certifi()
            ctx.load_verify_locations(cafile=where)
        if opts.get("check_hostname") is False:
            ctx.check_hostname = False
    logger.debug("TLS verification uses %s", source)
    keylog = os.environ.get("SSLKEYLOGFILE") if trust_env else None
    if keylog:
        # What curl, browsers and ssl.create_default_context() do, for Wireshark.
        ctx.keylog_filename = keylog
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
