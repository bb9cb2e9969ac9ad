"""SQLAlchemy Core tables. The schema itself is created by the Alembic migrations in
`store/migrations`; these definitions must stay identical to what they produce
(tests/integration/store/test_migrations.py compares them).

Enums are stored as their string values (no native enum types), so adding a value never
needs a migration that alters a type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from store.types import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One active project per organization: a partial unique index, same on both dialects.
ONE_ACTIVE_PROJECT_INDEX = "uq_projects_one_active"
CERTIFICATE_SERIAL_INDEX = "ix_certificates_serial"

_ACTIVE_ONLY = text("status = 'active'")


def _id() -> Column[Any]:
    return Column("id", Uuid(), primary_key=True)


def _created_at() -> Column[Any]:
    return Column("created_at", UtcDateTime(), nullable=False)


organizations = Table(
    "organizations",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    _created_at(),
    UniqueConstraint("name"),
)

projects = Table(
    "projects",
    metadata,
    _id(),
    Column("organization_id", Uuid(), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("wrapped_data_key", LargeBinary(), nullable=False),
    _created_at(),
    # Set by an export into the active project; the project is read-only from then on.
    Column("exported_at", UtcDateTime(), nullable=True),
    UniqueConstraint("organization_id", "name"),
    Index(
        ONE_ACTIVE_PROJECT_INDEX,
        "organization_id",
        unique=True,
        sqlite_where=_ACTIVE_ONLY,
        postgresql_where=_ACTIVE_ONLY,
    ),
)

certificate_authorities = Table(
    "certificate_authorities",
    metadata,
    _id(),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent_id", Uuid(), ForeignKey("certificate_authorities.id"), nullable=True),
    Column("key_type", String(16), nullable=False),
    Column("certificate_pem", Text(), nullable=False),
    Column("chain_pem", Text(), nullable=False),
    Column("subject", Text(), nullable=False),
    Column("serial", String(64), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("encrypted_key", LargeBinary(), nullable=False),
    # Last CRL number handed out; bumped atomically by CARepository.next_crl_number.
    Column("crl_number", BigInteger(), nullable=False, server_default=text("0")),
    _created_at(),
    # False: the key must not leave this CA; an export skips it (and its profiles).
    Column("exportable", Boolean(), nullable=False, server_default=text("true")),
    UniqueConstraint("project_id", "name"),
)

policies = Table(
    "policies",
    metadata,
    _id(),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("rules", JSON(), nullable=False),
    _created_at(),
    UniqueConstraint("project_id", "name"),
)

profiles = Table(
    "profiles",
    metadata,
    _id(),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("slug", String(63), nullable=False),
    Column("name", String(200), nullable=False),
    # NULL for a self-signed profile (issuer_type "self-signed").
    Column("ca_id", Uuid(), ForeignKey("certificate_authorities.id"), nullable=True),
    Column("policy_id", Uuid(), ForeignKey("policies.id"), nullable=False),
    Column("validity_days", Integer(), nullable=False),
    Column("key_usages", JSON(), nullable=False),
    Column("extended_key_usages", JSON(), nullable=False),
    Column("renew_before_days", Integer(), nullable=False),
    Column("default_key_type", String(16), nullable=False),
    Column("enrollment", JSON(), nullable=False),
    _created_at(),
    Column("issuer_type", String(16), nullable=False, server_default=text("'ca'")),
    UniqueConstraint("project_id", "slug"),
    Index(None, "ca_id"),
    Index(None, "policy_id"),
)

applications = Table(
    "applications",
    metadata,
    _id(),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("slug", String(63), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text(), nullable=False),
    _created_at(),
    UniqueConstraint("project_id", "slug"),
)

profile_attachments = Table(
    "profile_attachments",
    metadata,
    _id(),
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=False),
    Column("profile_id", Uuid(), ForeignKey("profiles.id"), nullable=False),
    Column("methods", JSON(), nullable=False),
    _created_at(),
    UniqueConstraint("application_id", "profile_id"),
    Index(None, "profile_id"),
)

certificates = Table(
    "certificates",
    metadata,
    _id(),
    Column("serial", String(64), nullable=False),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    # NULL for a certificate of a self-signed profile (signed by its own key).
    Column("ca_id", Uuid(), ForeignKey("certificate_authorities.id"), nullable=True),
    Column("profile_id", Uuid(), ForeignKey("profiles.id"), nullable=False),
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=True),
    Column("subject", Text(), nullable=False),
    Column("common_name", Text(), nullable=True),
    Column("sans", JSON(), nullable=False),
    # Lower-cased SANs, one per line: what `search` matches against.
    Column("sans_text", Text(), nullable=False),
    Column("key_type", String(32), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("certificate_pem", Text(), nullable=False),
    Column("chain_pem", Text(), nullable=False),
    Column("method", String(16), nullable=False),
    Column("requester", Text(), nullable=False),
    Column("renewed_from", Uuid(), ForeignKey("certificates.id"), nullable=True),
    _created_at(),
    # The unique serial index is what guarantees that concurrent issuance never stores
    # two certificates with one serial (the core re-signs on DuplicateSerial).
    Index(CERTIFICATE_SERIAL_INDEX, "serial", unique=True),
    Index(None, "project_id"),
    Index(None, "application_id"),
    Index(None, "profile_id"),
    Index(None, "ca_id"),
    Index(None, "status"),
    Index(None, "not_after"),
    Index(None, "common_name"),
    Index(None, "created_at"),
)

principals = Table(
    "principals",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("product_role", String(16), nullable=True),
    Column("disabled", Boolean(), nullable=False, server_default=text("false")),
    _created_at(),
    UniqueConstraint("name"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("principal_id", Uuid(), ForeignKey("principals.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", Text(), nullable=False),
    _created_at(),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Index(None, "principal_id"),
)

secrets = Table(
    "secrets",
    metadata,
    _id(),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("ciphertext", LargeBinary(), nullable=False),
    _created_at(),
    UniqueConstraint("owner", "purpose"),
)

# Latest CRL per CA (one row each).
crls = Table(
    "crls",
    metadata,
    Column("ca_id", Uuid(), ForeignKey("certificate_authorities.id"), primary_key=True),
    Column("number", BigInteger(), nullable=False),
    Column("der", LargeBinary(), nullable=False),
    Column("this_update", UtcDateTime(), nullable=False),
    Column("next_update", UtcDateTime(), nullable=False),
)

# No foreign keys: the audit trail outlives (and may name) things that are gone.
audit_events = Table(
    "audit_events",
    metadata,
    _id(),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", Text(), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", Text(), nullable=False),
    Column("project_id", Uuid(), nullable=True),
    Column("application_id", Uuid(), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("details", JSON(), nullable=False),
    Index(None, "at"),
    Index(None, "application_id"),
    Index(None, "project_id"),
    Index(None, "action"),
    Index(None, "target_id"),
)


# Tables of later features live in their own modules on the same metadata; importing them
# here makes `metadata` complete for whoever imports store.tables.
from store import (  # noqa: E402, F401
    tables_access,
    tables_acme,
    tables_approvals,
    tables_cache,
    tables_events,
    tables_scep,
)
