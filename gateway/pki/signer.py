"""The CA signer: turns a policy-approved CertificateTemplate into a certificate.

Implements `gateway.core.ports.Signer`. The CA key is decrypted through the KMS on
first use and the loaded key object is cached per (CA, encrypted blob), so a
re-keyed CA (new blob) is never signed for with a stale key.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from gateway.core.errors import CAUnavailable, InvalidInput
from gateway.core.model import CertificateAuthority
from gateway.core.template import CertificateTemplate, SignedCertificate
from gateway.pki.ca import CaUrls, authority_key_identifier, distribution_extensions
from gateway.pki.keys import (
    PrivateKey,
    load_private_key_der,
    private_key_to_der,
    public_key_der,
    signing_hash,
)
from gateway.pki.kms import Kms, KmsError, ca_key_aad
from gateway.pki.serials import random_serial

__all__ = ["CaSigner", "encrypt_ca_key", "key_usage_from_names", "random_serial"]

_KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def key_usage_from_names(names: frozenset[str] | set[str]) -> x509.KeyUsage:
    """KeyUsage from cryptography attribute names, for an end-entity certificate."""
    unknown = sorted(set(names) - set(_KEY_USAGE_NAMES))
    if unknown:
        raise InvalidInput(f"unknown key usage(s): {', '.join(unknown)}")
    # RFC 5280 §4.2.1.3: keyCertSign requires cA=TRUE, and leaves are never CAs.
    if "key_cert_sign" in names:
        raise InvalidInput("key_cert_sign is only allowed in CA certificates")
    # §4.2.1.3: encipherOnly/decipherOnly are undefined without keyAgreement.
    if ({"encipher_only", "decipher_only"} & names) and "key_agreement" not in names:
        raise InvalidInput("encipher_only/decipher_only require key_agreement")
    return x509.KeyUsage(**{name: name in names for name in _KEY_USAGE_NAMES})


def _utc(moment: datetime) -> datetime:
    """Certificates carry whole seconds in UTC; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


async def encrypt_ca_key(
    kms: Kms, project_id: uuid.UUID, ca_id: uuid.UUID, key: PrivateKey
) -> bytes:
    """The value for `CertificateAuthority.encrypted_key`: PKCS#8 DER sealed under the
    project's data key, bound to the CA row."""
    return await kms.encrypt(project_id, private_key_to_der(key), ca_key_aad(ca_id))


class CaSigner:
    def __init__(self, kms: Kms, urls: CaUrls) -> None:
        self._kms = kms
        self._urls = urls
        # ca.id -> (sha256 of encrypted blob, key). One entry per CA: a new blob
        # replaces the old key instead of accumulating.
        self._keys: dict[uuid.UUID, tuple[bytes, PrivateKey]] = {}

    def __repr__(self) -> str:
        return f"CaSigner(cached_keys={len(self._keys)})"

    async def load_ca_key(self, ca: CertificateAuthority) -> PrivateKey:
        """The CA's private key (decrypted once, then cached). Also used to sign CRLs."""
        fingerprint = hashlib.sha256(ca.encrypted_key).digest()
        cached = self._keys.get(ca.id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        try:
            der = await self._kms.decrypt(ca.project_id, ca.encrypted_key, ca_key_aad(ca.id))
            key = load_private_key_der(der)
        except (KmsError, InvalidInput) as err:
            # Public detail, private cause: the caller logs `err`, the client sees this.
            raise CAUnavailable(f"the key of CA {ca.name!r} cannot be loaded") from err
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode("ascii"))
        if public_key_der(ca_cert.public_key()) != public_key_der(key.public_key()):
            raise CAUnavailable(f"the key of CA {ca.name!r} does not match its certificate")
        self._keys[ca.id] = (fingerprint, key)
        return key

    def forget(self, ca_id: uuid.UUID) -> None:
        self._keys.pop(ca_id, None)

    async def issue(
        self, ca: CertificateAuthority, template: CertificateTemplate
    ) -> SignedCertificate:
        ca_key = await self.load_ca_key(ca)
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode("ascii"))

        # Keep the leaf inside the CA's validity: a leaf outliving its issuer fails
        # path validation (RFC 5280 §6.1.3 (a)(2)) once the CA expires.
        not_before = max(_utc(template.not_before), ca_cert.not_valid_before_utc)
        not_after = min(_utc(template.not_after), ca_cert.not_valid_after_utc)
        if not_after <= not_before:
            raise CAUnavailable(f"CA {ca.name!r} is expired or not valid for the requested period")
        builder = _leaf(template, ca_cert.subject, not_before, not_after)
        cdp, aia = distribution_extensions(self._urls, ca.id, ocsp=True)
        builder = (
            builder.add_extension(authority_key_identifier(ca_cert), critical=False)
            .add_extension(cdp, critical=False)
            .add_extension(aia, critical=False)
        )
        return _signed(builder.sign(ca_key, signing_hash(ca_key)))

    async def self_sign(
        self, key: CertificateIssuerPrivateKeyTypes, template: CertificateTemplate
    ) -> SignedCertificate:
        """The template signed by its own key: issuer = subject, AKI = SKI, and no CRL
        distribution point or caIssuers URL, since no CA of ours vouches for it (the
        certificate is its own trust anchor and is revoked by no longer trusting it)."""
        if not isinstance(
            key,
            ec.EllipticCurvePrivateKey
            | rsa.RSAPrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise InvalidInput("this key type cannot sign a self-signed certificate")
        if len(template.subject) == 0:
            # RFC 5280 §4.1.2.4: the issuer field MUST hold a non-empty name, and a
            # self-signed certificate's issuer is its subject.
            raise InvalidInput(
                "a self-signed certificate needs a subject (its issuer is its subject, which "
                "RFC 5280 §4.1.2.4 requires to be non-empty)"
            )
        builder = _leaf(
            template, template.subject, _utc(template.not_before), _utc(template.not_after)
        )
        # §4.2.1.1: the AKI MAY be omitted in a self-signed certificate; giving the key's
        # own SKI lets path builders recognise it as self-signed (AKI = SKI).
        ski = x509.SubjectKeyIdentifier.from_public_key(template.public_key)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        return _signed(builder.sign(key, signing_hash(key)))


def _leaf(
    template: CertificateTemplate, issuer: x509.Name, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    """The end-entity certificate of `template`, without its issuer-specific extensions."""
    subject_empty = len(template.subject) == 0
    if subject_empty and not template.sans:
        # RFC 5280 §4.1.2.6: an empty subject requires subjectAltName.
        raise InvalidInput("a certificate with an empty subject needs at least one SAN")

    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(issuer)
        .public_key(template.public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # RFC 5280 §4.2.1.9: MAY be non-critical in leaves; critical makes the
        # "not a CA" statement binding on every verifier.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(template.public_key), critical=False
        )
    )
    if template.key_usages:
        # §4.2.1.3: SHOULD be critical; an empty KeyUsage is not allowed, so omit it.
        builder = builder.add_extension(key_usage_from_names(template.key_usages), critical=True)
    if template.extended_key_usages:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(template.extended_key_usages)), critical=False
        )
    if template.sans:
        # §4.2.1.6: critical exactly when the subject is empty.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(template.sans)), critical=subject_empty
        )
    return builder


def _signed(cert: x509.Certificate) -> SignedCertificate:
    return SignedCertificate(
        der=cert.public_bytes(serialization.Encoding.DER),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
