"""CaSigner.self_sign: a self-signed profile's certificate, signed by its own key (issue 12,
item 2), checked with cryptography and with the system openssl as a trust anchor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.errors import InvalidInput
from gateway.core.model import KeyType
from gateway.core.template import CertificateTemplate
from gateway.pki.keys import PrivateKey, generate_private_key
from gateway.pki.kms import Kms
from gateway.pki.signer import CaSigner
from tests.unit.pki.conftest import FakeUrls, Openssl


def _template(key: PrivateKey, subject: x509.Name | None = None) -> CertificateTemplate:
    now = datetime.now(UTC)
    return CertificateTemplate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "box.example.com")])
        if subject is None
        else subject,
        sans=(x509.DNSName("box.example.com"),),
        public_key=key.public_key(),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=30),
        key_usages=frozenset({"digital_signature"}),
        extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )


@pytest.mark.parametrize(
    "key_type",
    [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519],
    ids=["ok/ec-p256", "ok/ec-p384", "ok/rsa-2048", "ok/ed25519"],
)
async def test_ok_self_signed_by_its_own_key(
    kms: Kms, urls: FakeUrls, openssl: Openssl, key_type: KeyType
) -> None:
    key = generate_private_key(key_type)
    signed = await CaSigner(kms, urls).self_sign(key, _template(key))
    cert = x509.load_pem_x509_certificate(signed.pem.encode())
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest  # RFC 5280 §4.2.1.1
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    for absent in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(absent)
    # Trusted as itself, it verifies for TLS servers (openssl treats it as a trust anchor).
    path = openssl.write_cert("self.pem", cert)
    result = openssl.run("verify", "-CAfile", path, "-purpose", "sslserver", path)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_fail_empty_subject(kms: Kms, urls: FakeUrls) -> None:
    key = generate_private_key(KeyType.EC_P256)
    # RFC 5280 §4.1.2.4: the issuer (here the subject) must not be empty.
    with pytest.raises(InvalidInput, match="needs a subject"):
        await CaSigner(kms, urls).self_sign(key, _template(key, x509.Name([])))
