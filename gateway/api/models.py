"""Request models of the REST API, declared once: the dispatcher validates every body and
query against them before a handler runs, and the OpenAPI document is generated from them.

pydantic v2 (not msgspec): its JSON Schema output is draft 2020-12, which OpenAPI 3.1 takes
as is; its errors carry a location per violation (rendered as `violations`); strict mode
refuses "1" for an integer and 1.5 for a count as the hand-written checks did; and its JSON
parser bounds nesting depth, so hostile input fails validation instead of the server.

Bodies allow unknown properties (extra="allow") so the services' own checks, which name the
unknown field (`unknown_field`), keep working; what the model knows is typed and bounded.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from gateway.core.model import (
    AppRole,
    IssuerType,
    KeyType,
    PrincipalKind,
    ProductRole,
    RevocationReason,
)

# Bounds that keep every value inside what SQLite, PostgreSQL (BIGINT, no NUL in text) and
# Python's datetime arithmetic can hold.
MAX_INT = 2**63 - 1
MIN_YEAR, MAX_YEAR = 1970, 9000
_NO_NUL = r"^[^\x00]*$"

Text = Annotated[str, StringConstraints(max_length=10_000, pattern=_NO_NUL)]
Name = Annotated[str, StringConstraints(max_length=200, pattern=_NO_NUL)]
Pem = Annotated[str, StringConstraints(max_length=200_000, pattern=_NO_NUL)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,63}$")]
# A slug as given by a client: the service answers a bad one with its own message.
SlugLike = Annotated[str, StringConstraints(max_length=200, pattern=_NO_NUL)]
Days = Annotated[int, Field(ge=1, le=36_500)]
Offset = Annotated[int, Field(ge=0, le=MAX_INT)]
Limit = Annotated[int, Field(ge=1, le=500)]


def _in_years(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_in_years)]


def _sane_json(value: Any, depth: int = 0) -> Any:
    """A free-form JSON value (rules, settings) bounded like the typed fields."""
    if depth > 16:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain NUL")
        if len(value) > 100_000:
            raise ValueError("string too long")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise ValueError("integer out of range")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("number out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _sane_json(key, depth + 1)
            _sane_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _sane_json(item, depth + 1)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_sane_json)]
JsonValue = Annotated[Any, AfterValidator(_sane_json)]


class Body(BaseModel):
    """A request body. `error_codes` maps a top-level field to the stable error code a
    violation of it answers with (default `invalid_input`)."""

    model_config = ConfigDict(strict=True, extra="allow")
    error_codes: ClassVar[dict[str, str]] = {}


class Query(BaseModel):
    """Query parameters: strings on the wire, so lax (a query "10" is the integer 10)."""

    model_config = ConfigDict(extra="allow")
    error_codes: ClassVar[dict[str, str]] = {}


class Empty(Body):
    """A body the operation ignores or takes as {} when absent."""


# --- certificates ---------------------------------------------------------------------------


class IssueBody(Body):
    csr: Pem | None = Field(None, description="PKCS#10 CSR (PEM); or omit for a server key")
    key_type: KeyType | None = None
    subject: Name | JsonObject | None = Field(
        None, description='A common name, or attributes like {"CN": "x", "O": "y"}'
    )
    sans: list[Name] | None = Field(None, max_length=100)
    passphrase: Name | None = None
    validity_days: Days | None = None
    store_key: bool = Field(
        True, description="Keep a server-generated key, encrypted, for …/private-key"
    )


class KeySource(enum.StrEnum):
    NEW = "new"
    REUSE = "reuse"
    CSR = "csr"


class RenewBody(Body):
    csr: Pem | None = None
    key_source: KeySource | None = Field(
        None,
        description='"csr" (implied by a csr), "new" (default: a new key, kept here) or '
        '"reuse" (the certificate\'s kept key)',
    )
    key_type: KeyType | None = None
    validity_days: Days | None = None
    store_key: bool = Field(
        True, description="Keep a server-generated key, encrypted, for …/private-key"
    )


class RevokeBody(Body):
    reason: RevocationReason = RevocationReason.UNSPECIFIED


class CertificateStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class PageQuery(Query):
    limit: Limit = 50
    offset: Offset = 0


class CertificateQuery(PageQuery):
    status: CertificateStatus | None = None
    profile: SlugLike | None = None
    expiring_before: Timestamp | None = None
    q: Name | None = None


# --- catalog --------------------------------------------------------------------------------


class ProjectQuery(Query):
    project_id: uuid.UUID | None = None


class ProjectBody(Body):
    name: Name
    active: bool = False


class CAKindName(enum.StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"
    EXTERNAL = "external"


class CreateCABody(Body):
    name: Name
    kind: CAKindName = CAKindName.ROOT
    parent_id: uuid.UUID | None = None
    key_type: KeyType | None = None
    validity_days: Days | None = None
    common_name: Name | None = None
    project_id: uuid.UUID | None = None
    # kind "external": the CA's certificate (no key is held here) and its issuer chain.
    certificate_pem: Pem | None = None
    chain_pem: Pem | None = None
    # False: the key never leaves this CA (an export skips it and its profiles).
    exportable: bool = True


class ImportCABody(Body):
    name: Name
    certificate_pem: Pem
    private_key_pem: Pem
    passphrase: Name | None = None
    chain_pem: Pem | None = None
    project_id: uuid.UUID | None = None
    # False: the key never leaves this CA (an export skips it and its profiles).
    exportable: bool = True


class PolicyBody(Body):
    name: Name
    rules: JsonObject = Field(default_factory=dict)
    project_id: uuid.UUID | None = None


class PolicyUpdateBody(Body):
    rules: JsonObject


class ProfileBody(Body):
    slug: SlugLike
    name: Name | None = None
    ca_id: uuid.UUID | None = None
    policy_id: uuid.UUID | None = None
    issuer_type: IssuerType | None = None
    validity_days: Days | None = None
    renew_before_days: Days | None = None
    key_usages: list[Name] | None = Field(None, max_length=20)
    extended_key_usages: list[Name] | None = Field(None, max_length=20)
    default_key_type: KeyType | None = None
    enrollment: JsonObject | None = None
    project_id: uuid.UUID | None = None


class ProfileUpdateBody(Body):
    name: Name | None = None
    validity_days: Days | None = None
    renew_before_days: Days | None = None
    key_usages: list[Name] | None = Field(None, max_length=20)
    extended_key_usages: list[Name] | None = Field(None, max_length=20)
    default_key_type: KeyType | None = None
    enrollment: JsonObject | None = None


class ApplicationBody(Body):
    slug: SlugLike
    name: Name | None = None
    description: Text = ""


class AttachBody(Body):
    profile: SlugLike
    methods: JsonObject | None = None


class MethodsBody(Body):
    methods: JsonObject


# --- principals, tokens, members -------------------------------------------------------------


class PrincipalBody(Body):
    name: Name
    kind: PrincipalKind = PrincipalKind.USER
    product_role: ProductRole | None = None
    error_codes = {"product_role": "invalid_role"}


class PrincipalUpdateBody(Body):
    product_role: ProductRole | None = None
    disabled: bool | None = None
    error_codes = {"product_role": "invalid_role"}


class TokenBody(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_NO_NUL)] = "api"
    expires_at: Timestamp | None = None


class MemberBody(Body):
    principal: Name = Field(description="A principal's id or name")
    role: AppRole
    error_codes = {"role": "invalid_role"}


class RoleBody(Body):
    role: AppRole
    error_codes = {"role": "invalid_role"}


# --- approvals ------------------------------------------------------------------------------


class ApprovalStep(Body):
    approvers: list[Name] = Field(min_length=1, max_length=50)
    required: int = Field(1, ge=1, le=100)


class ApprovalPolicyBody(Body):
    steps: list[ApprovalStep] = Field(min_length=1, max_length=10)
    bypass: list[Name] = Field(default_factory=list, max_length=100)
    request_ttl_hours: int = Field(72, ge=1, le=24 * 90)


class CommentBody(Body):
    comment: Text | None = None


class RequestState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


class RequestQuery(PageQuery):
    state: Name | None = None


class AuditQuery(PageQuery):
    actor: Name | None = None
    action: Name | None = None
    target_id: Name | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class AuditAllQuery(AuditQuery):
    application: SlugLike | None = None


# --- protocol settings ----------------------------------------------------------------------


class EstSettingsBody(Body):
    enabled: bool | None = None
    accepted_auth: list[Name] | None = Field(None, max_length=10)
    required_auth: list[Name] | None = Field(None, max_length=10)
    require_tls_unique: bool | None = None
    username: Name | None = None
    bootstrap_ca_pem: Pem | None = None


class PasswordBody(Body):
    password: Name | None = None

    @field_validator("password", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # The same words as the service's own check (protocols.est.settings.check_password).
        if value is not None and not isinstance(value, str):
            raise ValueError("the password must be a string of 8 to 256 characters")
        return value


class AcmeSettingsBody(Body):
    enabled: bool | None = None
    eab_required: bool | None = None
    eab_reuse: bool | None = None
    validation_networks: list[Name] | None = Field(None, max_length=100)
    challenges: list[Name] | None = Field(None, max_length=10)
    terms_of_service: Text | None = None


class ScepSettingsBody(Body):
    enabled: bool | None = None
    allow_des: bool | None = None


class ChallengeBody(Body):
    challenge: Name | None = None


class RotateBody(Body):
    keep_previous: bool = True


class DynamicChallengeBody(Body):
    ttl_minutes: int | None = Field(None, ge=1, le=60 * 24 * 365)


# --- inventory across projects -------------------------------------------------------------


class InventoryQuery(PageQuery):
    """`GET /api/v1/certificates`: every filter is optional and they are ANDed."""

    project_id: uuid.UUID | None = None
    profile_id: uuid.UUID | None = None
    application: SlugLike | None = Field(
        None, description="An application's slug in the active project, or its id (any project)"
    )
    status: CertificateStatus | None = None
    expiring_before: Timestamp | None = None
    q: Name | None = None


# --- responses (documentation and the schemathesis conformance check; serializers.py and
# the handlers build the bodies) -----------------------------------------------------------
