"""What the policy engine hands the signer: a fully decided certificate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes


@dataclass(frozen=True)
class CertificateTemplate:
    subject: x509.Name
    sans: tuple[x509.GeneralName, ...]
    public_key: CertificatePublicKeyTypes
    not_before: datetime
    not_after: datetime
    # cryptography KeyUsage attribute names: digital_signature, key_encipherment, …
    key_usages: frozenset[str]
    extended_key_usages: tuple[x509.ObjectIdentifier, ...]


@dataclass(frozen=True)
class SignedCertificate:
    der: bytes
    pem: str
    serial: int
    not_before: datetime
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")
