"""Certificate authorities: create internal roots/intermediates, validate imported ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from gateway.core.errors import InvalidInput
from gateway.core.model import KeyType
from gateway.pki.keys import (
    PrivateKey,
    generate_private_key,
    key_type_of,
    load_private_key_pem,
    public_key_der,
    signing_hash,
)
from gateway.pki.serials import random_serial

# Backdate CA certificates a little so relying parties with a slow clock accept them
# at once (the same reason Let's Encrypt backdates leaves).
CA_BACKDATE = timedelta(minutes=5)


class CaUrls(Protocol):
    """Where relying parties fetch a CA's CRL and certificate (RFC 5280 §4.2.1.13, §4.2.2.1)."""

    def crl_url(self, ca_id: uuid.UUID) -> str: ...

    def issuer_url(self, ca_id: uuid.UUID) -> str: ...

    def ocsp_url(self, ca_id: uuid.UUID) -> str: ...


def ca_name(common_name: str, organization: str | None = None) -> x509.Name:
    if not common_name.strip():
        raise InvalidInput("a CA needs a non-empty common name")
    attributes = []
    try:
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    except ValueError as err:
        # RFC 5280 Appendix A.1 upper bounds: ub-common-name and ub-organization-name = 64.
        raise InvalidInput("CA common name and organization must be 1-64 characters") from err
    return x509.Name(attributes)


def _ca_key_usage() -> x509.KeyUsage:
    # RFC 5280 §4.2.1.3: keyCertSign to sign certificates, cRLSign to sign CRLs;
    # digitalSignature lets the CA key sign OCSP responses directly (RFC 6960 §4.2.2.2).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_identifier(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI for certificates/CRLs `cert` signs: its SKI when present (RFC 5280
    §4.2.1.1 says the two MUST match), else computed from its public key."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        # §4.2.1.2 method (1): SHA-1 of the subjectPublicKey, as the SKI would have been.
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def distribution_extensions(
    urls: CaUrls, issuer_ca_id: uuid.UUID, *, ocsp: bool = False
) -> tuple[x509.CRLDistributionPoints, x509.AuthorityInformationAccess]:
    """CRL DP (RFC 5280 §4.2.1.13) and AIA caIssuers (§4.2.2.1) pointing at the issuer;
    with `ocsp`, also the issuer's OCSP responder (AIA id-ad-ocsp, §4.2.2.1, RFC 6960 §3.1).
    Leaves only: the responder knows the certificates it issued, not subordinate CAs."""
    cdp = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(urls.crl_url(issuer_ca_id))],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )
    descriptions = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(urls.issuer_url(issuer_ca_id)),
        )
    ]
    if ocsp:
        descriptions.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(urls.ocsp_url(issuer_ca_id)),
            ),
        )
    return cdp, x509.AuthorityInformationAccess(descriptions)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def create_root_ca(
    common_name: str,
    key_type: KeyType,
    validity_days: int,
    organization: str | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed root CA and its fresh key."""
    if validity_days <= 0:
        raise InvalidInput("CA validity must be at least one day")
    key = generate_private_key(key_type)
    name = ca_name(common_name, organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    not_before = _now() - CA_BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CA_BACKDATE + timedelta(days=validity_days))
        # RFC 5280 §4.2.1.9: basicConstraints MUST be critical in CA certificates.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        # §4.2.1.1: AKI MAY be omitted in a self-signed root; we include it (= SKI)
        # because some verifiers use it to match the issuer.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return builder.sign(key, signing_hash(key)), key


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _matches(cert_public_key: CertificatePublicKeyTypes, key: PrivateKey) -> bool:
    return public_key_der(cert_public_key) == public_key_der(key.public_key())


def create_intermediate_ca(
    common_name: str,
    key_type: KeyType,
    validity_days: int,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    issuer_ca_id: uuid.UUID | None = None,
    urls: CaUrls | None = None,
    path_length: int | None = 0,
    organization: str | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A subordinate CA signed by `issuer_cert`/`issuer_key`, with a fresh key.

    Validity is nested inside the issuer's; CDP/AIA point at the issuer when both
    `urls` and `issuer_ca_id` are given.
    """
    if validity_days <= 0:
        raise InvalidInput("CA validity must be at least one day")
    if not _matches(issuer_cert.public_key(), issuer_key):
        raise InvalidInput("issuer key does not match the issuer certificate")
    issuer_bc = _basic_constraints(issuer_cert)
    if issuer_bc is None or not issuer_bc.ca:
        raise InvalidInput("issuer certificate is not a CA")
    # RFC 5280 §4.2.1.9: pathLenConstraint counts the CA certificates that may follow.
    if issuer_bc.path_length is not None:
        if issuer_bc.path_length == 0:
            raise InvalidInput("issuer's pathLenConstraint is 0: it cannot sign a sub-CA")
        if path_length is None or path_length >= issuer_bc.path_length:
            path_length = issuer_bc.path_length - 1
    if path_length is not None and path_length < 0:
        raise InvalidInput("path length must be non-negative")

    key = generate_private_key(key_type)
    now = _now()
    not_before = max(now - CA_BACKDATE, issuer_cert.not_valid_before_utc)
    not_after = min(now + timedelta(days=validity_days), issuer_cert.not_valid_after_utc)
    if not_after <= now:
        raise InvalidInput("issuer certificate has expired")

    builder = (
        x509.CertificateBuilder()
        .subject_name(ca_name(common_name, organization))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_identifier(issuer_cert), critical=False)
    )
    if urls is not None and issuer_ca_id is not None:
        cdp, aia = distribution_extensions(urls, issuer_ca_id)
        builder = builder.add_extension(cdp, critical=False).add_extension(aia, critical=False)
    return builder.sign(issuer_key, signing_hash(issuer_key)), key


def certificate_to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificates_pem(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; InvalidInput when there is none or
    a block does not parse."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidInput("no PEM certificate found")
    try:
        return x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError as err:
        raise InvalidInput("malformed PEM certificate") from err


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"


def load_ca_import(
    cert_pem: str,
    key_pem: str,
    passphrase: str | None = None,
    chain_pem: str | None = None,
) -> tuple[x509.Certificate, PrivateKey, list[x509.Certificate]]:
    """Validate an operator-supplied CA: certificate, matching key, and issuer chain.

    Extra certificates after the first in `cert_pem` (a "fullchain" file) are taken as
    the start of the chain. Returns (certificate, key, chain nearest-first).
    """
    cert, chain = _ca_and_chain(cert_pem, chain_pem)
    key = load_private_key_pem(key_pem, passphrase)
    if not _matches(cert.public_key(), key):
        raise InvalidInput("the private key does not match the certificate's public key")
    # RFC 5280 §4.2.1.3: a key that signs certificates here must be allowed to.
    ku = _key_usage(cert)
    if ku is None or not ku.key_cert_sign:
        raise InvalidInput("the CA certificate lacks the keyCertSign key usage")
    return cert, key, chain


def load_external_ca(
    cert_pem: str, chain_pem: str | None = None
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """An external CA's certificate (its key stays elsewhere) and its issuer chain, checked
    as an import is except for the key. Returns (certificate, chain nearest-first)."""
    cert, chain = _ca_and_chain(cert_pem, chain_pem)
    ku = _key_usage(cert)
    if ku is not None and not ku.key_cert_sign:
        # §4.2.1.3: absent, the key is unrestricted (older CAs); present, it must allow this.
        raise InvalidInput("the CA certificate's key usage does not allow keyCertSign")
    return cert, chain


def _ca_and_chain(
    cert_pem: str, chain_pem: str | None
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """A current CA certificate of a supported key type and a chain that signs it."""
    certs = load_certificates_pem(cert_pem)
    cert, chain = certs[0], certs[1:]
    if chain_pem and chain_pem.strip():
        chain += load_certificates_pem(chain_pem)
    if key_type_of(cert.public_key()) is None:
        raise InvalidInput(
            "unsupported CA key type (supported: EC P-256/P-384, RSA 2048/3072/4096, Ed25519)"
        )
    # RFC 5280 §4.2.1.9: only cA=TRUE marks a key that may certify others.
    bc = _basic_constraints(cert)
    if bc is None or not bc.ca:
        raise InvalidInput(
            "the certificate is not a CA certificate (basicConstraints cA is not set)"
        )
    now = datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        raise InvalidInput(f"the CA certificate expired at {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > now:
        raise InvalidInput(
            f"the CA certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
        )

    # Each chain certificate must be the issuer of the one before it (RFC 5280 §6.1:
    # names chain and each signature verifies under the next key).
    previous = cert
    for position, issuer in enumerate(chain, start=1):
        issuer_bc = _basic_constraints(issuer)
        if issuer_bc is None or not issuer_bc.ca:
            raise InvalidInput(f"chain certificate {position} ({_describe(issuer)}) is not a CA")
        try:
            previous.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise InvalidInput(
                f"chain certificate {position} ({_describe(issuer)}) did not sign "
                f"{_describe(previous)}"
            ) from err
        previous = issuer
    return cert, chain
