"""Certificate revocation lists (RFC 5280 §5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.model import RevocationReason
from gateway.pki.ca import authority_key_identifier
from gateway.pki.keys import PrivateKey, public_key_der, signing_hash

# RFC 5280 §5.2.3: CRLNumber is a non-negative integer of at most 20 octets.
_MAX_CRL_NUMBER = 2 ** (20 * 8 - 1) - 1


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: RevocationReason


def reason_flag(reason: RevocationReason) -> x509.ReasonFlags:
    """cryptography's ReasonFlags member for `reason` (its member *names* match ours;
    its values are the ASN.1 identifiers, e.g. "keyCompromise")."""
    return x509.ReasonFlags[reason.value]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    number: int,
    revoked: Iterable[RevokedEntry],
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A complete (non-delta) v2 CRL for `ca_cert`, DER-encoded."""
    if not 0 <= number <= _MAX_CRL_NUMBER:
        raise ValueError("CRL number must be a non-negative integer of at most 20 octets")
    if _utc(next_update) <= _utc(this_update):
        raise ValueError("next_update must be after this_update")
    if public_key_der(ca_cert.public_key()) != public_key_der(ca_key.public_key()):
        raise ValueError("CA key does not match the CA certificate")

    builder = (
        x509.CertificateRevocationListBuilder()
        # §5.1.2.3: the CRL issuer is the CA's subject (no indirect CRLs here).
        .issuer_name(ca_cert.subject)
        .last_update(_utc(this_update))
        # §5.1.2.5: conforming CRL issuers MUST include nextUpdate.
        .next_update(_utc(next_update))
        # §5.2.1 / §5.2.3: AKI and CRLNumber MUST be present, both non-critical.
        .add_extension(authority_key_identifier(ca_cert), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in revoked:
        entry_builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(_utc(entry.revoked_at))
        )
        # §5.3.1: reasonCode unspecified (0) SHOULD NOT be used; omit the extension.
        if entry.reason is not RevocationReason.UNSPECIFIED:
            entry_builder = entry_builder.add_extension(
                x509.CRLReason(reason_flag(entry.reason)), critical=False
            )
        builder = builder.add_revoked_certificate(entry_builder.build())
    crl = builder.sign(ca_key, signing_hash(ca_key))
    return crl.public_bytes(serialization.Encoding.DER)
