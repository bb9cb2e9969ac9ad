"""Response models of the REST API: the success bodies each route declares
(gateway.api.responses), from which the OpenAPI document's response schemas are generated.
Request models are in gateway.api.models.

Responses allow extra properties (extra="allow"): a serializer may add a field before its
model names it, and clients ignore what they do not know."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.model import AppRole, PrincipalKind, ProductRole, RevocationReason


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


Str = str
OptStr = str | None


class ProjectOut(Out):
    id: Str
    name: Str
    status: Annotated[str, Field(json_schema_extra={"enum": ["active", "legacy"]})]
    created_at: OptStr
    # When the project was exported into the active one (read-only from then on).
    exported_at: OptStr


class CAOut(Out):
    id: Str
    project_id: Str
    name: Str
    kind: Str
    parent_id: OptStr
    key_type: Str
    subject: Str
    serial: Str
    not_before: OptStr
    not_after: OptStr
    status: Str
    certificate_pem: Str
    chain_pem: OptStr
    created_at: OptStr
    exportable: bool


class PolicyOut(Out):
    id: Str
    project_id: Str
    name: Str
    rules: dict[str, Any]
    created_at: OptStr


class ProfileOut(Out):
    id: Str
    project_id: Str
    slug: Str
    name: Str
    ca_id: OptStr
    policy_id: OptStr
    validity_days: int
    renew_before_days: int | None
    key_usages: list[str]
    extended_key_usages: list[str]
    default_key_type: Str
    enrollment: dict[str, Any] | None
    created_at: OptStr
    issuer_type: Annotated[str, Field(json_schema_extra={"enum": ["ca", "self-signed"]})]


class ApplicationOut(Out):
    id: Str
    project_id: Str
    slug: Str
    name: OptStr
    description: OptStr
    created_at: OptStr


class ApplicationListed(ApplicationOut):
    role: AppRole | None


class AttachmentOut(Out):
    id: Str
    application_id: Str
    profile_id: Str
    profile: Str
    methods: dict[str, Any]
    created_at: OptStr


class CertificateOut(Out):
    id: Str
    serial: Str
    application_id: OptStr
    profile_id: OptStr
    ca_id: OptStr
    subject: Str
    common_name: OptStr
    sans: list[str]
    key_type: OptStr
    not_before: OptStr
    not_after: OptStr
    status: Str
    revoked_at: OptStr
    revocation_reason: RevocationReason | None
    method: Str
    requester: OptStr
    renewed_from: OptStr
    renewed_by: OptStr
    certificate_pem: Str
    chain_pem: OptStr
    created_at: OptStr


class IssuedOut(CertificateOut):
    private_key_pem: OptStr = None


class PrivateKeyOut(Out):
    private_key_pem: Annotated[
        str,
        Field(description="PKCS#8 PEM; ENCRYPTED PRIVATE KEY when X-Key-Passphrase was given"),
    ]


class PendingOut(Out):
    request_id: Str
    status: Annotated[str, Field(json_schema_extra={"enum": ["pending"]})]


class PrincipalOut(Out):
    id: Str
    name: Str
    kind: PrincipalKind
    product_role: ProductRole | None
    disabled: bool
    created_at: OptStr


class MembershipOut(Out):
    application_id: Str
    application: OptStr
    project_id: OptStr
    role: AppRole
    created_at: OptStr


class PrincipalDetail(PrincipalOut):
    memberships: list[MembershipOut]


class TokenOut(Out):
    id: Str
    principal_id: Str
    name: Str
    status: Annotated[str, Field(json_schema_extra={"enum": ["active", "revoked", "expired"]})]
    created_at: OptStr
    expires_at: OptStr
    revoked_at: OptStr


class CreatedTokenOut(Out):
    id: Str
    principal_id: Str
    name: Str
    token: Str
    expires_at: OptStr


class WhoAmI(Out):
    principal: PrincipalOut
    token: TokenOut
    memberships: list[MembershipOut]


class MemberOut(Out):
    application: Str
    application_id: Str
    principal_id: Str
    principal: OptStr
    kind: PrincipalKind | None
    product_role: ProductRole | None
    role: AppRole
    created_at: OptStr


class AuditEventOut(Out):
    id: Str
    at: OptStr
    actor: Str
    action: Str
    target_type: OptStr
    target_id: OptStr
    project_id: OptStr
    application_id: OptStr
    source_ip: OptStr
    details: Any


class StepOut(Out):
    approvers: list[str]
    required: int


class ApprovalPolicyOut(Out):
    id: Str
    application: Str
    profile: Str
    steps: list[StepOut]
    bypass: list[str]
    request_ttl_hours: int
    created_at: OptStr


class RequestOut(Out):
    id: Str
    application_id: OptStr  # null: held by a legacy project's policy
    profile_id: Str
    state: Str
    step: int | None
    requester: OptStr
    requester_id: OptStr
    method: Str
    subject: OptStr
    sans: list[str]
    csr_pem: Str
    requested_validity_days: int | None
    renewed_from: OptStr
    approvals: list[dict[str, Any]]
    comment: OptStr
    certificate_id: OptStr
    created_at: OptStr
    expires_at: OptStr
    updated_at: OptStr


class DeletedOut(Out):
    deleted: bool
    cancelled_requests: int


class SettingsOut(Out):
    """A protocol's settings view (its fields are the protocol's own)."""


class AcmeSettingsOut(Out):
    enabled: bool
    eab_required: bool
    validation_networks: list[str] | None
    challenges: list[str] | None
    terms_of_service: OptStr
    directory: Str
    eab_kid: OptStr
    eab_hmac_key: OptStr = None


class EabOut(Out):
    eab_kid: Str
    eab_hmac_key: Str


def items_of(model: type[BaseModel]) -> type[BaseModel]:
    """{"items": [model]}: a list without pagination."""
    from pydantic import create_model

    created: type[BaseModel] = create_model(
        f"{model.__name__}List",
        __base__=Out,
        items=(list[model], ...),  # type: ignore[valid-type]
    )
    return created


def page_of(model: type[BaseModel]) -> type[BaseModel]:
    """{"items", "total", "limit", "offset"}: one page of a list."""
    from pydantic import create_model

    created: type[BaseModel] = create_model(
        f"{model.__name__}Page",
        __base__=Out,
        items=(list[model], ...),  # type: ignore[valid-type]
        total=(int, ...),
        limit=(int, ...),
        offset=(int, ...),
    )
    return created


class InventoryCertificateOut(CertificateOut):
    """A certificate of the inventory across projects: its project, and its application's
    slug (null for legacy issuance, through a profile endpoint without an application)."""

    project_id: Str
    application: OptStr


class LegacyApprovalPolicyOut(Out):
    """A legacy project's approval policy: it gates the legacy profile-scoped enrollment
    of `profile` (no application)."""

    id: Str
    project_id: OptStr
    profile_id: Str
    profile: Str
    steps: list[StepOut]
    bypass: list[str]
    request_ttl_hours: int
    created_at: OptStr
