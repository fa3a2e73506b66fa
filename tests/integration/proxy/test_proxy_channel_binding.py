"""Channel binding (RFC 5929 ``tls-server-end-point``) for NTLM and Negotiate to ``https://``
proxies, checked by a scripted HTTPS proxy whose acceptor is pyspnego's server side given the
expected binding (NTLM: the AUTHENTICATE message's MsvAvChannelBindings must be exactly the MD5
of it; Kerberos: MIT's acceptor compares the authenticator's checksum).

No packaged proxy on loopback checks bindings (squid's helpers do not), hence the scripted one.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from proxypeers import NTLM_DOMAIN, NTLM_PASSWORD, USER, SpnegoProxy

import wsclient
from wsclient import ProxyAuthenticationRequired
from wsclient.proxy.auth import tls_server_end_point


def _leaf_der(proxy_tls: Any) -> bytes:
    with open(proxy_tls.chain_path) as fh:
        pem = fh.read()
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def _bindings(application_data: bytes) -> Any:
    from spnego.channel_bindings import GssChannelBindings

    return GssChannelBindings(application_data=application_data)


@pytest.fixture
def https_spnego(proxy_tls: Any, spnego_user_file: Any) -> Iterator[Any]:
    """A factory of scripted https:// NTLM/Negotiate proxies expecting a given binding."""
    made: list[SpnegoProxy] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(proxy_tls.chain_path, proxy_tls.key_path)

    def make(scheme: str, application_data: bytes) -> SpnegoProxy:
        proxy = SpnegoProxy(
            scheme, spnego_user_file, tls_context=context, channel_bindings=_bindings(application_data)
        )
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()


def _url(proxy: SpnegoProxy, user: str | None, password: str | None) -> str:
    # "localhost": the name in the proxy's certificate and in its Kerberos principal.
    url = proxy.url(user, password).replace("http://", "https://", 1)
    return url.replace("@127.0.0.1:", "@localhost:").replace("//127.0.0.1:", "//localhost:")


def _connect(ws_target: Any, proxy_url: str, proxy_tls: Any) -> Any:
    return wsclient.connect(
        ws_target.url("/cbt"),
        proxies={"ws": proxy_url},
        request_options={"proxy_verify": proxy_tls.ca_path},
        timeout=10,
    )


@pytest.mark.parametrize("scheme", ["NTLM", "Negotiate"])
def test_ntlm_sends_the_tls_server_end_point_binding(
    scheme: str, https_spnego: Any, proxy_tls: Any, ws_target: Any
) -> None:
    expected = b"tls-server-end-point:" + hashlib.sha256(_leaf_der(proxy_tls)).digest()
    proxy = https_spnego(scheme, expected)
    with _connect(ws_target, _url(proxy, f"{NTLM_DOMAIN}\\{USER}", NTLM_PASSWORD), proxy_tls) as ws:
        ws.send("bound")
        assert ws.recv(timeout=10) == "bound"
        assert tuple(ws.remote_address[:2])[1] == proxy.port
    assert proxy.users and proxy.users[-1].lower().endswith(USER)
    assert proxy.ntlm_bindings_seen[-1] == hashlib.md5(_bindings(expected).pack()).digest()


@pytest.mark.parametrize("scheme", ["NTLM", "Negotiate"])
def test_a_different_binding_is_refused(scheme: str, https_spnego: Any, proxy_tls: Any, ws_target: Any) -> None:
    # As if a TLS-intercepting middlebox sat between us and the proxy: the proxy's own
    # certificate is not the one we bound to.
    proxy = https_spnego(scheme, b"tls-server-end-point:" + hashlib.sha256(b"another certificate").digest())
    with pytest.raises(ProxyAuthenticationRequired):
        _connect(ws_target, _url(proxy, f"{NTLM_DOMAIN}\\{USER}", NTLM_PASSWORD), proxy_tls)
    assert proxy.ntlm_bindings_seen and proxy.ntlm_bindings_seen[-1] not in (None, b"\x00" * 16)
    assert not proxy.users


@pytest.fixture
def kerberos_acceptor_env(krb5_realm: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in krb5_realm.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KRB5_KTNAME", f"FILE:{krb5_realm.keytab}")
    return krb5_realm


def test_kerberos_sends_the_binding(
    kerberos_acceptor_env: Any, https_spnego: Any, proxy_tls: Any, ws_target: Any
) -> None:
    expected = b"tls-server-end-point:" + hashlib.sha256(_leaf_der(proxy_tls)).digest()
    proxy = https_spnego("Negotiate", expected)
    with _connect(ws_target, _url(proxy, None, None), proxy_tls) as ws:
        ws.send("bound by kerberos")
        assert ws.recv(timeout=10) == "bound by kerberos"
    assert proxy.users[-1].startswith(f"{USER}@")


def test_kerberos_with_a_different_binding_is_refused(
    kerberos_acceptor_env: Any, https_spnego: Any, proxy_tls: Any, ws_target: Any
) -> None:
    proxy = https_spnego("Negotiate", b"tls-server-end-point:" + hashlib.sha256(b"other").digest())
    with pytest.raises(ProxyAuthenticationRequired):
        _connect(ws_target, _url(proxy, None, None), proxy_tls)
    assert not proxy.users


# --------------------------------------------------------------------------- the hash rule


def _self_signed(hash_algorithm: Any) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hash_algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_tls_server_end_point_hash_follows_the_signature() -> None:
    from cryptography.hazmat.primitives import hashes

    for algorithm, expected in (
        (hashes.SHA256(), hashlib.sha256),
        (hashes.SHA384(), hashlib.sha384),
        (hashes.SHA512(), hashlib.sha512),
    ):
        der = _self_signed(algorithm)
        assert tls_server_end_point(der) == b"tls-server-end-point:" + expected(der).digest()


def test_tls_server_end_point_upgrades_md5_and_sha1_to_sha256() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    der = _self_signed(hashes.SHA256())
    # OpenSSL 3 no longer signs with SHA-1 or MD5: relabel a sha256WithRSAEncryption
    # certificate (OID ...1.1.11) as sha1WithRSAEncryption (...1.1.5) and md5WithRSA
    # (...1.1.4). Same lengths, so the DER stays well formed; the signature is not checked.
    sha256_oid = bytes.fromhex("2a864886f70d01010b")
    assert der.count(sha256_oid) == 2
    for last, name in ((0x05, "sha1"), (0x04, "md5")):
        relabelled = der.replace(sha256_oid, sha256_oid[:-1] + bytes([last]))
        algorithm = x509.load_der_x509_certificate(relabelled).signature_hash_algorithm
        assert algorithm is not None and algorithm.name == name
        assert tls_server_end_point(relabelled) == b"tls-server-end-point:" + hashlib.sha256(relabelled).digest()
