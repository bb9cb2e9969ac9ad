"""Domain model: what an operator manages (see ../shared/DESIGN.md, "The model").

Plain frozen dataclasses. Repositories in `store` return these, never ORM rows.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class ProjectStatus(enum.StrEnum):
    ACTIVE = "active"
    LEGACY = "legacy"


class KeyType(enum.StrEnum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


class CAKind(enum.StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"
    # A certificate only: the key is held elsewhere, so nothing is signed here (issuance
    # answers ca_external until a connector to the issuing system exists).
    EXTERNAL = "external"


class IssuerType(enum.StrEnum):
    """What signs a profile's certificates: its CA, or each certificate's own key."""

    CA = "ca"
    SELF_SIGNED = "self-signed"


class CAStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class CertificateStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class EnrollmentMethod(enum.StrEnum):
    API = "api"
    ACME = "acme"
    EST = "est"
    SCEP = "scep"


class RevocationReason(enum.StrEnum):
    """RFC 5280 §5.3.1 CRLReason, by name; `code` is the wire value."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    CERTIFICATE_HOLD = "certificate_hold"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"
    AA_COMPROMISE = "aa_compromise"

    @property
    def code(self) -> int:
        return _REASON_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> RevocationReason:
        for reason, value in _REASON_CODES.items():
            if value == code:
                return reason
        raise ValueError(f"unknown CRL reason code {code}")


# RFC 5280 §5.3.1: value 7 is unused; removeFromCRL (8) only appears in delta CRLs.
_REASON_CODES: dict[RevocationReason, int] = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
    RevocationReason.AA_COMPROMISE: 10,
}


class ProductRole(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class PrincipalKind(enum.StrEnum):
    USER = "user"
    MACHINE = "machine"


@dataclass(frozen=True)
class Organization:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Project:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    status: ProjectStatus
    # The project's data key, wrapped (AES-256-GCM) by the root key. Never plaintext.
    wrapped_data_key: bytes
    created_at: datetime
    # When the project was exported into the active one; it is read-only from then on.
    exported_at: datetime | None = None

    @property
    def read_only(self) -> bool:
        return self.exported_at is not None


@dataclass(frozen=True)
class CertificateAuthority:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    kind: CAKind
    parent_id: uuid.UUID | None
    key_type: KeyType
    certificate_pem: str
    # Issuer chain above this CA (PEM, nearest first, root last); empty for a root.
    chain_pem: str
    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    status: CAStatus
    # PKCS#8 DER encrypted under the project's data key (gateway.pki.kms envelope);
    # empty for an external CA, whose key is not held here.
    encrypted_key: bytes
    created_at: datetime
    # False: the key must not leave this CA (an export skips it and its profiles).
    exportable: bool = True

    @property
    def holds_key(self) -> bool:
        return self.kind is not CAKind.EXTERNAL and bool(self.encrypted_key)

    @property
    def enabled(self) -> bool:
        return self.status is CAStatus.ACTIVE

    @property
    def full_chain_pem(self) -> str:
        """This CA's certificate followed by its issuers: what a leaf's `chain_pem` holds."""
        return self.certificate_pem + self.chain_pem


@dataclass(frozen=True)
class SubjectRule:
    """One subject attribute (short name: CN, O, OU, C, ST, L, serialNumber, …)."""

    attribute: str
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class NameRule:
    """Allow/deny patterns for one SAN type. An empty `allow` forbids the type."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyRules:
    subject: tuple[SubjectRule, ...] = (SubjectRule("CN"),)
    # Attributes not listed in `subject` are refused unless this is on.
    allow_other_subject_attributes: bool = False
    dns: NameRule = NameRule()
    # IP rules hold addresses or CIDRs ("127.0.0.0/8", "::1/128").
    ip: NameRule = NameRule()
    email: NameRule = NameRule()
    uri: NameRule = NameRule()
    require_san: bool = False
    # Key algorithms: "rsa", "ec", "ed25519", "ed448".
    key_algorithms: tuple[str, ...] = ("rsa", "ec", "ed25519")
    min_rsa_bits: int = 2048
    ec_curves: tuple[str, ...] = ("P-256", "P-384", "P-521")
    # Key usages use cryptography's KeyUsage attribute names (digital_signature,
    # key_encipherment, …); EKUs use short names (server_auth, client_auth, …) or dotted OIDs.
    allowed_key_usages: tuple[str, ...] = (
        "digital_signature",
        "key_encipherment",
        "key_agreement",
        "content_commitment",
        "data_encipherment",
    )
    required_key_usages: tuple[str, ...] = ()
    allowed_extended_key_usages: tuple[str, ...] = ("server_auth", "client_auth")
    required_extended_key_usages: tuple[str, ...] = ()
    max_validity_days: int = 397


@dataclass(frozen=True)
class Policy:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    rules: PolicyRules
    created_at: datetime


@dataclass(frozen=True)
class Profile:
    id: uuid.UUID
    project_id: uuid.UUID
    slug: str
    name: str
    # None for a self-signed profile (issuer_type SELF_SIGNED).
    ca_id: uuid.UUID | None
    policy_id: uuid.UUID
    validity_days: int
    key_usages: tuple[str, ...]
    extended_key_usages: tuple[str, ...]
    renew_before_days: int
    # Key type used for server-side key generation when the request names none.
    default_key_type: KeyType
    # Legacy model: enrollment baked into the profile, served at /profiles/{id}/….
    # method name -> settings (no secrets; secrets live in the secrets table).
    enrollment: dict[str, dict[str, Any]]
    created_at: datetime
    issuer_type: IssuerType = IssuerType.CA

    @property
    def self_signed(self) -> bool:
        return self.issuer_type is IssuerType.SELF_SIGNED


@dataclass(frozen=True)
class Application:
    id: uuid.UUID
    project_id: uuid.UUID
    slug: str
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class ProfileAttachment:
    """A profile attached to an application, with its per-method enrollment settings."""

    id: uuid.UUID
    application_id: uuid.UUID
    profile_id: uuid.UUID
    # method name -> settings, e.g. {"api": {"enabled": true}}; secrets are stored apart.
    methods: dict[str, dict[str, Any]]
    created_at: datetime

    def method_enabled(self, method: EnrollmentMethod) -> bool:
        return bool(self.methods.get(method.value, {}).get("enabled", False))


@dataclass(frozen=True)
class Certificate:
    id: uuid.UUID
    serial: str  # lowercase hex, no separators
    project_id: uuid.UUID
    # None for a certificate of a self-signed profile (signed by its own key).
    ca_id: uuid.UUID | None
    profile_id: uuid.UUID
    application_id: uuid.UUID | None
    subject: str  # RFC 4514
    common_name: str | None
    sans: tuple[str, ...]  # typed: "dns:example.com", "ip:127.0.0.1", "email:…", "uri:…"
    key_type: str
    not_before: datetime
    not_after: datetime
    status: CertificateStatus
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    certificate_pem: str
    chain_pem: str
    method: EnrollmentMethod
    requester: str
    renewed_from: uuid.UUID | None
    created_at: datetime
    # The newest certificate whose renewed_from is this one. Not a column: derived from
    # renewed_from when the API reads certificates (CertificateRepository.with_renewed_by).
    renewed_by: uuid.UUID | None = None


@dataclass(frozen=True)
class Principal:
    id: uuid.UUID
    name: str
    kind: PrincipalKind
    product_role: ProductRole | None
    created_at: datetime
    disabled: bool = False


@dataclass(frozen=True)
class ApiToken:
    id: uuid.UUID
    principal_id: uuid.UUID
    name: str
    # scrypt hash of the secret part, "scrypt$n$r$p$salt_b64$hash_b64".
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Secret:
    """A retrievable secret (EAB HMAC key, RA key, …) encrypted under its project's key."""

    id: uuid.UUID
    project_id: uuid.UUID
    owner: str  # e.g. "attachment:<uuid>:acme" — who it belongs to
    purpose: str  # e.g. "eab_hmac"
    ciphertext: bytes
    created_at: datetime


@dataclass(frozen=True)
class CrlRecord:
    ca_id: uuid.UUID
    number: int
    der: bytes
    this_update: datetime
    next_update: datetime


@dataclass(frozen=True)
class AuditEvent:
    id: uuid.UUID
    at: datetime
    actor: str
    action: str  # e.g. "certificate.issued"
    target_type: str
    target_id: str
    project_id: uuid.UUID | None = None
    application_id: uuid.UUID | None = None
    source_ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


class AppRole(enum.StrEnum):
    """Roles inside one application (DESIGN.md): each includes the ones below it."""

    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Member:
    application_id: uuid.UUID
    principal_id: uuid.UUID
    role: AppRole
    created_at: datetime


@dataclass(frozen=True)
class ApprovalStep:
    approvers: tuple[uuid.UUID, ...]  # principal ids allowed to approve this step
    required: int = 1  # how many distinct approvals complete the step


@dataclass(frozen=True)
class ApprovalPolicy:
    """Human approval for one attached profile of one application, or (application_id
    None, project_id set) for a profile's legacy profile-scoped enrollment: a legacy
    project's own policy, gating its legacy endpoints the same way."""

    id: uuid.UUID
    application_id: uuid.UUID | None
    profile_id: uuid.UUID
    steps: tuple[ApprovalStep, ...]
    bypass: tuple[uuid.UUID, ...]  # machine identities that skip approval
    request_ttl_seconds: int
    created_at: datetime
    # Set only on a legacy (project-level) policy: the profile's project.
    project_id: uuid.UUID | None = None

    @property
    def legacy(self) -> bool:
        return self.application_id is None


class RequestState(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Approval:
    step: int
    principal_id: uuid.UUID
    decision: str  # "approved" | "rejected"
    comment: str
    at: datetime


@dataclass(frozen=True)
class CertificateRequest:
    """An enrollment waiting for (or past) human approval."""

    id: uuid.UUID
    # None: a legacy profile-scoped enrollment, held by its project's legacy policy.
    application_id: uuid.UUID | None
    profile_id: uuid.UUID
    csr_pem: str
    # A stable digest of requester + CSR so a device repeating the same request (EST, SCEP
    # retries) is recognised instead of opening a second request.
    fingerprint: str
    requester: str  # principal name or protocol identity, as in Certificate.requester
    requester_id: uuid.UUID | None  # the principal, when the requester is one
    method: EnrollmentMethod
    state: RequestState
    step: int  # index of the step awaiting approvals
    approvals: tuple[Approval, ...]
    requested_validity_days: int | None
    renewed_from: uuid.UUID | None
    certificate_id: uuid.UUID | None
    comment: str  # last rejection / cancellation comment
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    # Bumped by every stored change; writes are conditional on it (optimistic locking), so
    # two approvers racing on one request cannot both move it (see RequestRepository).
    version: int = 1
