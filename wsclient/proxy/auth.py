"""Proxy authentication for CONNECT: challenge parsing and the Basic, Digest, NTLM and
Negotiate responses.

The scheme follows the proxy's ``Proxy-Authenticate`` offers, strongest first: Negotiate,
NTLM, Digest, Basic. NTLM and Negotiate use pyspnego (the extra ``python-wsclient[ntlm]``).

Nothing here does I/O. An authenticator is asked for a ``Proxy-Authorization`` value each
time the proxy answers 407, and answers ``None`` when it has nothing more to try (the
credentials were refused).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._net import Deadline, call_within
from ..exceptions import ConnectTimeout

__all__ = [
    "AuthStep",
    "Authenticator",
    "BasicAuth",
    "Challenge",
    "DigestAuth",
    "SpnegoAuth",
    "choose_authenticator",
    "continues_handshake",
    "forget_proxy_schemes",
    "kerberos_available",
    "parse_challenges",
    "preemptive_authenticator",
    "remember_scheme",
    "spnego_available",
    "tls_server_end_point",
]

logger = logging.getLogger("wsclient.proxy")

# Strongest first.
PREFERENCE = ("negotiate", "ntlm", "digest", "basic")

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``Proxy-Authenticate`` header (RFC 9110 section 11).

    ``scheme`` is lower case; ``token68`` holds a bare token (NTLM and Negotiate send their
    server tokens this way); ``params`` holds ``name=value`` pairs with lower-case names.
    """

    scheme: str
    token68: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class _Scanner:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def skip_ws_and_commas(self) -> None:
        while self.peek() in (" ", "\t", ",") and self.peek():
            self.pos += 1

    def run(self, chars: frozenset[str]) -> str:
        start = self.pos
        while self.peek() and self.peek() in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """A quoted-string starting at the opening quote; unterminated ones end the text."""
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def try_param(self) -> tuple[str, str] | None:
        """Read ``name BWS = BWS (token / quoted-string)`` or move nothing and return None."""
        start = self.pos
        name = self.run(_TCHAR)
        if name:
            self.skip_ws()
            if self.peek() == "=":
                self.pos += 1
                self.skip_ws()
                if self.peek() == '"':
                    return name.lower(), self.quoted()
                value = self.run(_TCHAR)
                if value:
                    return name.lower(), value
        self.pos = start
        return None


def parse_challenges(values: Sequence[str]) -> list[Challenge]:
    """Parse ``Proxy-Authenticate`` header values into challenges, in order.

    One value may hold several challenges (``Basic realm="a", Digest realm="b", nonce="c"``).
    Malformed parts are skipped rather than failing the whole list.
    """
    challenges: list[Challenge] = []
    for value in values:
        scanner = _Scanner(value)
        while True:
            scanner.skip_ws_and_commas()
            if not scanner.peek():
                break
            scheme = scanner.run(_TCHAR)
            if not scheme:
                # Not a token: skip to the next comma.
                while scanner.peek() and scanner.peek() != ",":
                    scanner.pos += 1
                continue
            token68: str | None = None
            params: dict[str, str] = {}
            scanner.skip_ws()
            param = scanner.try_param()
            if param is None:
                start = scanner.pos
                run = scanner.run(_TOKEN68)
                padding = scanner.run(frozenset("="))
                scanner.skip_ws()
                if run and scanner.peek() in (",", ""):
                    token68 = run + padding
                else:
                    scanner.pos = start
            while param is not None:
                params.setdefault(param[0], param[1])
                scanner.skip_ws()
                if scanner.peek() != ",":
                    break
                # After a comma comes another parameter of this challenge, or a new one.
                mark = scanner.pos
                scanner.skip_ws_and_commas()
                param = scanner.try_param()
                if param is None:
                    scanner.pos = mark
            challenges.append(Challenge(scheme.lower(), token68, params))
    return challenges


# --- authenticators -------------------------------------------------------------------


@dataclass(frozen=True)
class AuthStep:
    """A ``Proxy-Authorization`` value to send.

    ``same_connection`` is True when the value answers a server token (the NTLM and
    Negotiate legs after the first): it is only valid on the connection that carried it.
    """

    value: str
    same_connection: bool = False


class Authenticator:
    """Base of the authenticators: one instance per CONNECT attempt."""

    #: The lower-case scheme token of ``Proxy-Authenticate``.
    scheme: str = ""
    #: The scheme as people write it, for messages.
    name: str = ""

    def step(self, challenges: Sequence[Challenge]) -> AuthStep | None:
        """The next ``Proxy-Authorization`` value for these 407 challenges, or ``None``.

        ``None`` means the credentials were refused (or the proxy stopped offering this
        scheme); the caller then reports the 407.
        """
        raise NotImplementedError

    def _find(self, challenges: Sequence[Challenge]) -> Challenge | None:
        for challenge in challenges:
            if challenge.scheme == self.scheme:
                return challenge
        return None


class BasicAuth(Authenticator):
    """RFC 7617 Basic: one try; a second 407 means the credentials were refused."""

    scheme = "basic"
    name = "Basic"

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._sent = False

    def step(self, challenges: Sequence[Challenge]) -> AuthStep | None:
        if self._sent or self._find(challenges) is None:
            return None
        self._sent = True
        raw = f"{self._username}:{self._password}".encode()
        return AuthStep("Basic " + base64.b64encode(raw).decode("ascii"))


def _digest_hash(algorithm: str) -> Any:
    base = algorithm.lower().removesuffix("-sess")
    name = {"md5": "md5", "sha-256": "sha256", "sha-512-256": "sha512_256"}.get(base)
    if name is None:
        return None
    try:
        hashlib.new(name)
    except ValueError:
        return None

    def digest(data: str, encoding: str) -> str:
        return hashlib.new(name, data.encode(encoding)).hexdigest()

    return digest


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestAuth(Authenticator):
    """RFC 7616 Digest for CONNECT (``uri`` is the authority ``host:port``).

    MD5, SHA-256 and SHA-512-256, their ``-sess`` variants, ``qop=auth`` (or ``auth-int``
    with the empty body of a CONNECT), ``userhash`` and ``charset=UTF-8``. A second 407 is
    answered once more only when the proxy says ``stale=true`` (a new nonce).
    """

    scheme = "digest"
    name = "Digest"

    def __init__(self, username: str, password: str, uri: str, method: str = "CONNECT") -> None:
        self._username = username
        self._password = password
        self._uri = uri
        self._method = method
        self._tries = 0
        self._nonce: str | None = None
        self._nc = 0
        #: The challenge of the last value computed (remembered for the next CONNECT).
        self.last_challenge: Challenge | None = None

    @staticmethod
    def supports(challenge: Challenge) -> bool:
        """Whether this class can answer ``challenge`` (a known algorithm and qop)."""
        if _digest_hash(challenge.params.get("algorithm", "MD5")) is None:
            return False
        qop = challenge.params.get("qop")
        if qop is None:
            return "nonce" in challenge.params
        options = {item.strip().lower() for item in qop.split(",")}
        return bool(options & {"auth", "auth-int"}) and "nonce" in challenge.params

    def step(self, challenges: Sequence[Challenge]) -> AuthStep | None:
        challenge = self._find(challenges)
        if challenge is None or not self.supports(challenge):
            return None
        stale = challenge.params.get("stale", "").lower() == "true"
        if self._tries >= 2 or (self._tries == 1 and not stale):
            return None
        self._tries += 1
        return AuthStep(self.authorization(challenge, cnonce=os.urandom(16).hex()))

    def authorization(self, challenge: Challenge, *, cnonce: str) -> str:
        """The ``Digest ...`` value answering ``challenge`` with the given client nonce."""
        params = challenge.params
        algorithm = params.get("algorithm", "MD5")
        digest = _digest_hash(algorithm)
        if digest is None:
            raise ValueError(f"unsupported Digest algorithm {algorithm!r}")
        realm = params.get("realm", "")
        nonce = params["nonce"]
        self.last_challenge = challenge
        if nonce != self._nonce:
            self._nonce = nonce
            self._nc = 0
        self._nc += 1
        nc = f"{self._nc:08x}"
        utf8 = params.get("charset", "").lower() == "utf-8"
        encoding = "utf-8"
        if not utf8:
            try:
                f"{self._username}{self._password}".encode("latin-1")
                encoding = "latin-1"
            except UnicodeEncodeError:
                encoding = "utf-8"
        qop_offer = params.get("qop")
        qop: str | None = None
        if qop_offer is not None:
            offers = [item.strip().lower() for item in qop_offer.split(",")]
            qop = "auth" if "auth" in offers else "auth-int"

        ha1 = digest(f"{self._username}:{realm}:{self._password}", encoding)
        if algorithm.lower().endswith("-sess"):
            ha1 = digest(f"{ha1}:{nonce}:{cnonce}", encoding)
        if qop == "auth-int":
            ha2 = digest(f"{self._method}:{self._uri}:{digest('', encoding)}", encoding)
        else:
            ha2 = digest(f"{self._method}:{self._uri}", encoding)
        if qop is None:
            response = digest(f"{ha1}:{nonce}:{ha2}", encoding)
        else:
            response = digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}", encoding)

        userhash = params.get("userhash", "").lower() == "true"
        parts: list[str] = []
        if userhash:
            parts.append(f"username={_quote(digest(f'{self._username}:{realm}', encoding))}")
        elif utf8 and not self._username.isascii():
            parts.append("username*=UTF-8''" + urllib.parse.quote(self._username, safe=""))
        else:
            parts.append(f"username={_quote(self._username)}")
        parts += [
            f"realm={_quote(realm)}",
            f"nonce={_quote(nonce)}",
            f"uri={_quote(self._uri)}",
            f"algorithm={algorithm}",
            f"response={_quote(response)}",
        ]
        if "opaque" in params:
            parts.append(f"opaque={_quote(params['opaque'])}")
        if qop is not None:
            parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
        if userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def spnego_available() -> bool:
    """Whether pyspnego (the extra ``python-wsclient[ntlm]``) can be imported."""
    try:
        import spnego  # noqa: F401
    except ImportError:
        return False
    return True


def kerberos_available() -> bool:
    """Whether pyspnego can do Kerberos here: Windows' SSPI, or the GSSAPI bindings (the
    extra ``python-wsclient[kerberos]``, which brings ``gssapi`` and ``krb5``)."""
    if sys.platform == "win32":
        return spnego_available()
    try:
        import gssapi  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return spnego_available()


def tls_server_end_point(der_cert: bytes) -> bytes:
    """The RFC 5929 ``tls-server-end-point`` channel binding data for a TLS server's
    certificate (DER): ``b"tls-server-end-point:"`` and the certificate's hash, with the
    hash of its signature algorithm (SHA-256 when that is MD5 or SHA-1, or has no hash)."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    cert = x509.load_der_x509_certificate(der_cert)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    name = algorithm.name.replace("-", "_") if algorithm is not None else "sha256"
    if name in ("md5", "sha1") or name not in hashlib.algorithms_available:
        name = "sha256"
    return b"tls-server-end-point:" + hashlib.new(name, der_cert).digest()


class SpnegoAuth(Authenticator):
    """NTLM or Negotiate through pyspnego: a multi-leg exchange on one connection.

    With credentials, Negotiate uses Kerberos when pyspnego can, else NTLM inside SPNEGO;
    without credentials, Negotiate tries the current Kerberos ticket cache. Given the
    certificate of an ``https://`` proxy, the tokens carry the ``tls-server-end-point``
    channel binding of that TLS connection (what proxies with Extended Protection require).
    """

    def __init__(
        self,
        scheme: str,
        username: str | None,
        password: str | None,
        hostname: str,
        proxy_cert: bytes | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        import spnego
        from spnego.channel_bindings import GssChannelBindings

        self.scheme = scheme
        self._header = "Negotiate" if scheme == "negotiate" else "NTLM"
        self.name = self._header
        protocol = "negotiate" if scheme == "negotiate" else "ntlm"
        if username is None and scheme == "negotiate":
            protocol = "kerberos"
        bindings = None
        if proxy_cert:
            try:
                bindings = GssChannelBindings(application_data=tls_server_end_point(proxy_cert))
            except Exception as exc:  # a certificate cryptography cannot read: no binding
                logger.debug("no channel binding for the proxy %s: %s", hostname, exc)
        self._context: Any = spnego.client(
            username,
            password,
            hostname=hostname,
            service="HTTP",
            protocol=protocol,
            channel_bindings=bindings,
        )
        self._legs = 0
        self._pending: str | None = None
        self._started = False
        # Kerberos may ask the KDC for a ticket inside a step: a network exchange with
        # krb5's own timeouts (seconds per KDC), so its steps keep to the opening's deadline.
        self._deadline = deadline if protocol != "ntlm" else None

    def _gss_step(self, *token: bytes) -> bytes | None:
        deadline = self._deadline
        left = None if deadline is None else deadline.remaining()
        if left is None:
            return self._context.step(*token)  # type: ignore[no-any-return]
        return call_within(  # type: ignore[no-any-return]
            left,
            lambda: ConnectTimeout(f"timed out in the {self.name} authentication (no answer from the Kerberos KDC)"),
            "wsclient-kerberos",
            self._context.step,
            *token,
        )

    def first_token(self) -> str:
        """Compute the opening token now, so a local failure (no Kerberos ticket, no NTLM
        support) is known before anything is sent. Raises whatever pyspnego raises."""
        token = self._gss_step()
        self._started = True
        self._pending = base64.b64encode(token).decode("ascii") if token else None
        return self._pending or ""

    def step(self, challenges: Sequence[Challenge]) -> AuthStep | None:
        challenge = self._find(challenges)
        if challenge is None:
            return None
        self._legs += 1
        if self._legs > 4:
            return None
        if self._legs == 1:
            pending = self._pending if self._started else (self.first_token() or None)
            if pending is None:
                return None
            return AuthStep(f"{self._header} {pending}")
        if not challenge.token68 or self._context.complete:
            # A bare "NTLM"/"Negotiate" again: the proxy refused the last token.
            return None
        try:
            token = self._gss_step(base64.b64decode(challenge.token68))
        except ConnectTimeout:
            raise
        except Exception as exc:  # pyspnego raises its own tree on bad server tokens
            logger.debug("%s: the proxy's token was not accepted: %s", self._header, exc)
            return None
        if not token:
            return None
        return AuthStep(f"{self._header} {base64.b64encode(token).decode('ascii')}", True)


def choose_authenticator(
    challenges: Sequence[Challenge],
    *,
    username: str | None,
    password: str | None,
    proxy_host: str,
    authority: str,
    proxy_cert: bytes | None = None,
    deadline: Deadline | None = None,
) -> tuple[Authenticator | None, str]:
    """Pick the strongest scheme offered that can be answered.

    ``proxy_cert`` is the DER certificate of an ``https://`` proxy: NTLM and Negotiate then
    bind their tokens to that TLS connection (RFC 5929 ``tls-server-end-point``).
    ``deadline`` bounds the Kerberos steps (``ConnectTimeout`` when it passes).

    Returns the authenticator (already able to give its first value), or ``None`` with a
    sentence saying why nothing can be answered (for the exception message).
    """
    offered = {c.scheme for c in challenges}
    if not offered:
        return None, "the proxy offered no authentication scheme"
    have_spnego = spnego_available()
    missing_extra = False
    # Negotiate without a password is Kerberos with the user's ticket cache: say why it
    # could not start (no bindings, no ticket) rather than only "give credentials".
    kerberos_why = ""
    for scheme in PREFERENCE:
        if scheme not in offered:
            continue
        if scheme in ("negotiate", "ntlm"):
            if username is None and scheme == "negotiate" and not kerberos_available():
                kerberos_why = (
                    "Negotiate without a password needs Kerberos, and pyspnego's Kerberos "
                    "bindings are missing: pip install 'python-wsclient[kerberos]'"
                )
                continue
            if not have_spnego:
                missing_extra = True
                continue
            if username is None and scheme == "ntlm":
                continue
            try:
                secret = (password or "") if username is not None else None
                auth = SpnegoAuth(scheme, username, secret, proxy_host, proxy_cert, deadline)
                auth.first_token()
            except ConnectTimeout:
                raise
            except Exception as exc:  # no Kerberos, no NTLM provider, ...: try the next one
                logger.debug("%s authentication is not possible here: %s", scheme, exc)
                if username is None and scheme == "negotiate":
                    kerberos_why = (
                        f"Kerberos for HTTP@{proxy_host} failed: {_first_line(exc)} "
                        "(is there a ticket? run kinit, check KRB5CCNAME)"
                    )
                continue
            return auth, ""
        if username is None:
            continue
        if scheme == "digest":
            challenge = next(c for c in challenges if c.scheme == "digest")
            if DigestAuth.supports(challenge):
                return DigestAuth(username, password or "", authority), ""
            continue
        if scheme == "basic":
            return BasicAuth(username, password or ""), ""
    names = ", ".join(sorted(offered))
    if username is None and kerberos_why:
        why = f"the proxy requires authentication ({names}); {kerberos_why}"
        if offered - {"negotiate"}:
            why += ", or give credentials in the proxy URL"
    elif username is None:
        why = f"the proxy requires authentication ({names}); give credentials in the proxy URL"
    else:
        why = f"none of the proxy's authentication schemes ({names}) can be answered"
    if missing_extra:
        why += "; NTLM/Negotiate need pyspnego: pip install python-wsclient[ntlm]"
    return None, why


def _first_line(exc: BaseException) -> str:
    """A one-line, bounded summary of a GSSAPI/pyspnego error (theirs span many lines)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."



# --- remembered schemes ----------------------------------------------------------------
# After a proxy accepted a scheme, the next CONNECT to it (same proxy URL scheme, host, port
# and user name) in this process answers at once instead of waiting for a 407: Basic and
# Digest (with the last nonce and the next nonce count) preemptively, NTLM and Negotiate by
# sending their first token. Only the scheme, and for Digest the proxy's last challenge and
# its nonce count, are kept: the values are computed from the proxy URL's credentials of
# each connection, so no secret is stored here.


@dataclass
class _Remembered:
    scheme: str
    challenge: Challenge | None = None
    nc: int = 0


_remembered: dict[tuple[str, str, int, str | None], _Remembered] = {}
_remembered_lock = threading.Lock()


def _memory_key(proxy: Any) -> tuple[str, str, int, str | None]:
    return (proxy.scheme, proxy.host.lower(), proxy.port, proxy.username)


def forget_proxy_schemes(proxy: Any = None) -> None:
    """Forget the scheme remembered for ``proxy`` (a ``ProxyURL``), or for every proxy."""
    with _remembered_lock:
        if proxy is None:
            _remembered.clear()
        else:
            _remembered.pop(_memory_key(proxy), None)


def remember_scheme(proxy: Any, authenticator: Authenticator) -> None:
    """Record that ``proxy`` accepted ``authenticator``'s scheme (after a 2xx to CONNECT)."""
    memory = _Remembered(authenticator.scheme)
    if isinstance(authenticator, DigestAuth):
        if authenticator.last_challenge is None:
            return
        memory.challenge = authenticator.last_challenge
        memory.nc = authenticator._nc
    key = _memory_key(proxy)
    with _remembered_lock:
        previous = _remembered.get(key)
        if (
            previous is not None
            and memory.challenge is not None
            and previous.challenge is not None
            and previous.challenge.params.get("nonce") == memory.challenge.params.get("nonce")
        ):
            # Another connection may have used later counts of the same nonce meanwhile.
            memory.nc = max(memory.nc, previous.nc)
        _remembered[key] = memory


def preemptive_authenticator(
    proxy: Any, authority: str, proxy_cert: bytes | None = None, deadline: Deadline | None = None
) -> tuple[Authenticator, AuthStep] | None:
    """The authenticator and first ``Proxy-Authorization`` value to send with the first
    CONNECT to ``proxy``, when a scheme was remembered for it; else ``None``."""
    key = _memory_key(proxy)
    with _remembered_lock:
        memory = _remembered.get(key)
        if memory is None:
            return None
        scheme, challenge = memory.scheme, memory.challenge
        if scheme == "digest":
            memory.nc += 1  # each use of a nonce takes the next count, across connections
            nc = memory.nc
    username, password = proxy.username, proxy.password
    try:
        if scheme == "basic" and username is not None:
            basic = BasicAuth(username, password or "")
            step = basic.step([Challenge("basic")])
            return (basic, step) if step is not None else None
        if scheme == "digest" and username is not None and challenge is not None:
            digest = DigestAuth(username, password or "", authority)
            digest._nonce = challenge.params.get("nonce")
            digest._nc = nc - 1
            digest._tries = 1
            return digest, AuthStep(digest.authorization(challenge, cnonce=os.urandom(16).hex()))
        if scheme in ("negotiate", "ntlm"):
            if username is None and not kerberos_available():
                return None
            secret = (password or "") if username is not None else None
            spnego_auth = SpnegoAuth(scheme, username, secret, proxy.host, proxy_cert, deadline)
            token = spnego_auth.first_token()
            if not token:
                return None
            spnego_auth._legs = 1
            return spnego_auth, AuthStep(f"{spnego_auth.name} {token}")
    except ConnectTimeout:
        raise
    except Exception as exc:  # e.g. the Kerberos ticket expired since: take the 407 path
        logger.debug("no preemptive %s for %s: %s", scheme, proxy, exc)
    return None


def continues_handshake(authenticator: Authenticator, challenges: Sequence[Challenge]) -> bool:
    """Whether a 407 answering a preemptive value is the next leg of its handshake (an
    NTLM/Negotiate server token) rather than a refusal."""
    if not isinstance(authenticator, SpnegoAuth):
        return False
    challenge = authenticator._find(challenges)
    return challenge is not None and bool(challenge.token68)
