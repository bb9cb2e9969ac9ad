"""SCEP (RFC 8894) domain: message vocabulary, pure rules, stored records and the port the
protocols.scep front-end calls (implemented by protocols.scep.transactions).

Everything here is wire-independent: the front-end turns PKI messages into these types and
the outcomes back into CertRep messages.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID

from gateway.core.errors import DomainError
from gateway.core.target import EnrollmentTarget


class MessageType(enum.IntEnum):
    """RFC 8894 §3.2.1.2 messageType values (sent as a decimal PrintableString)."""

    CERT_REP = 3
    RENEWAL_REQ = 17
    UPDATE_REQ = 18  # pre-RFC drafts only; RFC 8894 dropped it
    PKCS_REQ = 19
    CERT_POLL = 20  # GetCertInitial in the drafts
    GET_CERT = 21
    GET_CRL = 22


class PkiStatus(enum.IntEnum):
    """RFC 8894 §3.2.1.3."""

    SUCCESS = 0
    FAILURE = 2
    PENDING = 3


class FailInfo(enum.IntEnum):
    """RFC 8894 §3.2.1.4."""

    BAD_ALG = 0  # unrecognized or unsupported algorithm
    BAD_MESSAGE_CHECK = 1  # integrity check (signature, digest, decryption) failed
    BAD_REQUEST = 2  # transaction not permitted or supported
    BAD_TIME = 3  # signingTime not close enough to the system time
    BAD_CERT_ID = 4  # no certificate matches the given criteria


# RFC 8894 §3.5.2: one capability per line. "Renewal" is RenewalReq, "SCEPStandard" says we
# implement the RFC's mandatory set (AES, POSTPKIOperation, SHA-256).
CAPABILITIES: tuple[str, ...] = (
    "POSTPKIOperation",
    "SHA-256",
    "SHA-512",
    "AES",
    "DES3",
    "SCEPStandard",
    "Renewal",
)

# Where SCEP is served (DESIGN.md, URLs); clients may append /pkiclient.exe (RFC 8894 §4.1).
NEW_PATH = "/applications/{app}/profiles/{profile}/scep"
LEGACY_PATH = "/profiles/{profile_id}/scep"

# RFC 8894 §3.2.1.4 badTime: how far a signingTime may be from our clock. Devices without
# NTP drift; a day is the usual tolerance of SCEP servers.
SIGNING_TIME_SKEW = timedelta(hours=24)
MIN_STATIC_CHALLENGE = 8
DEFAULT_CHALLENGE_TTL = timedelta(minutes=60)
MAX_CHALLENGE_TTL = timedelta(days=7)
MAX_UNUSED_CHALLENGES = 1000
# A claim left "processing" this long belonged to a process that died; it may be taken over.
STALE_PROCESSING = timedelta(minutes=5)
# After an RA rotation the previous RA still decrypts and answers requests addressed to it
# for this long: devices fetch GetCACert (RFC 8894 §4.2) before they send, and one that did
# so just before the rotation (or polls a pending request, §3.3.3) would otherwise get
# badMessageCheck. GetCACert serves only the new RA from the moment of rotation.
RA_ROTATION_GRACE = timedelta(hours=24)


class ScepFailure(DomainError):
    """Answered as a signed CertRep FAILURE with `fail_info` (RFC 8894 §3.3.2.2)."""

    code = "scep_failure"

    def __init__(self, fail_info: FailInfo, message: str) -> None:
        super().__init__(message)
        self.fail_info = fail_info


@dataclass(frozen=True)
class RaCredentials:
    """The RA that signs CertReps and decrypts requests (RFC 8894 §2.2), and the CA chain
    above it (issuing CA first)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    ca_chain: tuple[x509.Certificate, ...]
    # The RA replaced by the last rotation, while its grace period lasts (RA_ROTATION_GRACE).
    previous: RaCredentials | None = None

    def addressed(self, recipients: Callable[[x509.Certificate], bool]) -> RaCredentials:
        """The RA a request's envelope is addressed to: this one, or the previous one during
        its grace period; this one when neither matches (the decryption then fails)."""
        if self.previous is not None and not recipients(self.certificate):
            if recipients(self.previous.certificate):
                return self.previous
        return self


@dataclass(frozen=True)
class CertRequest:
    """A decrypted PKCSReq or RenewalReq (RFC 8894 §3.3.1)."""

    target: EnrollmentTarget
    message_type: MessageType
    transaction_id: str
    csr: x509.CertificateSigningRequest
    csr_der: bytes
    signer: x509.Certificate
    source_ip: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a CertRep reports: certificates (issued one first) or a CRL on SUCCESS."""

    status: PkiStatus
    certificates: tuple[x509.Certificate, ...] = ()
    crl_der: bytes | None = None
    fail_info: FailInfo | None = None
    reason: str = ""

    @classmethod
    def success(cls, *certificates: x509.Certificate) -> Outcome:
        return cls(PkiStatus.SUCCESS, certificates=certificates)

    @classmethod
    def crl(cls, der: bytes) -> Outcome:
        return cls(PkiStatus.SUCCESS, crl_der=der)

    @classmethod
    def pending(cls, reason: str = "") -> Outcome:
        return cls(PkiStatus.PENDING, reason=reason)

    @classmethod
    def failure(cls, fail_info: FailInfo, reason: str) -> Outcome:
        return cls(PkiStatus.FAILURE, fail_info=fail_info, reason=reason)


class TransactionState(enum.StrEnum):
    PROCESSING = "processing"  # claimed, enrollment running
    PENDING = "pending"  # waiting for approval
    ISSUED = "issued"
    FAILED = "failed"


@dataclass(frozen=True)
class ScepTransaction:
    """One enrollment transaction (RFC 8894 §3.2.1.1 transactionID), so that a repeated
    request is answered with the first outcome instead of a second certificate."""

    id: uuid.UUID
    scope: str
    transaction_id: str
    request_key: str  # message type (+ renewal signer): see request_key()
    message_type: MessageType
    csr_digest: str
    csr_der: bytes
    requester: str
    renewed_from: uuid.UUID | None
    state: TransactionState
    certificate_id: uuid.UUID | None
    request_id: uuid.UUID | None
    fail_info: FailInfo | None
    reason: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ScepChallenge:
    """A dynamic one-time challenge password; only its SHA-256 is stored."""

    id: uuid.UUID
    scope: str
    digest: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None


class ScepBackend(Protocol):
    """What the protocols.scep front-end needs from the gateway."""

    async def resolve(self, application: str, profile: str) -> EnrollmentTarget:
        """NotFound unless the profile is attached to the application with SCEP enabled."""

    async def resolve_legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget: ...

    async def ra(self, target: EnrollmentTarget) -> RaCredentials: ...

    async def certificate_request(self, request: CertRequest) -> Outcome: ...

    async def poll(
        self, target: EnrollmentTarget, transaction_id: str, issuer: x509.Name, subject: x509.Name
    ) -> Outcome: ...

    async def get_cert(
        self, target: EnrollmentTarget, issuer: x509.Name, serial: int
    ) -> Outcome: ...

    async def get_crl(
        self, target: EnrollmentTarget, issuer: x509.Name, serial: int
    ) -> Outcome: ...


# ---- pure rules -----------------------------------------------------------------------


def scep_scope(target: EnrollmentTarget) -> str:
    """Who a target's SCEP state belongs to (its RA, challenges and transactions):
    "attachment:<id>:scep" or "profile:<id>:scep". Stored in rows: never change the form."""
    return target.owner + ":scep"


def requester(transaction_id: str) -> str:
    """The requester name of a SCEP enrollment: stable across retries and CertPolls, so the
    approval engine recognises a repeated request (its fingerprint covers the requester)."""
    return "scep:" + transaction_id


def request_key(message_type: MessageType, signer: x509.Certificate | None) -> str:
    """What distinguishes two requests that share a transactionID. Clients derive the
    transactionID from the public key (RFC 8894 §3.2.1.1 allows it), so a RenewalReq with
    the same key repeats it; the certificate that signs a renewal tells them apart."""
    digest = hashlib.sha256(str(int(message_type)).encode())
    if message_type is MessageType.RENEWAL_REQ and signer is not None:
        digest.update(signer.fingerprint(hashes.SHA256()))
    return digest.hexdigest()


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def challenge_password(csr: x509.CertificateSigningRequest) -> str | None:
    """The PKCS#9 challengePassword (RFC 2985 §5.4.1) that RFC 8894 §2.2 puts in the CSR."""
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    except ValueError:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def check_signing_time(signing_time: datetime | None, now: datetime) -> None:
    """RFC 8894 §3.2.1.4 badTime: a signingTime too far from our clock."""
    if signing_time is None:
        return
    if abs(signing_time - now) > SIGNING_TIME_SKEW:
        raise ScepFailure(
            FailInfo.BAD_TIME,
            f"signingTime {signing_time.isoformat()} is more than {SIGNING_TIME_SKEW} away "
            f"from the server time {now.isoformat()}",
        )


def challenge_ttl(minutes: object) -> timedelta:
    if minutes is None:
        return DEFAULT_CHALLENGE_TTL
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
        raise ValueError("ttl_minutes must be a positive integer")
    ttl = timedelta(minutes=minutes)
    if ttl > MAX_CHALLENGE_TTL:
        limit = int(MAX_CHALLENGE_TTL.total_seconds()) // 60
        raise ValueError(f"ttl_minutes must be at most {limit}")
    return ttl
