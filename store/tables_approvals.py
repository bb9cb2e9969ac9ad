"""Tables for approval policies and certificate requests. Same metadata as store.tables;
migration 0003 creates them and 0010 adds legacy (project-level) policies
(tests/integration/store/test_store_migrations.py compares)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from store.tables import metadata
from store.types import UtcDateTime

# One live (open or approved) request per fingerprint: two identical enrollments racing
# (an EST client retrying) cannot open two requests; the loser joins the winner's.
LIVE_FINGERPRINT_INDEX = "uq_certificate_requests_live_fingerprint"
_LIVE_ONLY = text("state IN ('open', 'approved')")

# A profile has at most one legacy (project-level, application_id NULL) policy; the
# (application_id, profile_id) unique constraint cannot say so, NULLs being distinct.
LEGACY_POLICY_INDEX = "uq_approval_policies_legacy_profile_id"
_LEGACY_ONLY = text("application_id IS NULL")

# Steps are [{"approvers": ["<principal uuid>", …], "required": n}, …]; bypass is a list of
# principal uuids. Both are read and written whole with the policy, never queried into.
# application_id NULL with project_id set: a legacy project's policy for the legacy
# profile-scoped enrollment of one of its profiles (migration 0010).
approval_policies = Table(
    "approval_policies",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=True),
    Column("profile_id", Uuid(), ForeignKey("profiles.id"), nullable=False),
    Column("steps", JSON(), nullable=False),
    Column("bypass", JSON(), nullable=False),
    Column("request_ttl_seconds", Integer(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=True),
    UniqueConstraint("application_id", "profile_id"),
    Index(None, "profile_id"),
    Index(None, "project_id"),
    Index(
        LEGACY_POLICY_INDEX,
        "profile_id",
        unique=True,
        sqlite_where=_LEGACY_ONLY,
        postgresql_where=_LEGACY_ONLY,
    ),
)

# Approvals live in a JSON column of the request row rather than a table of their own: a
# decision then is one conditional UPDATE of one row (WHERE version = :read), which is what
# lets exactly one of two racing approvers win on both backends.
# requester_id has no foreign key, like the audit trail: a request outlives its principal.
certificate_requests = Table(
    "certificate_requests",
    metadata,
    Column("id", Uuid(), primary_key=True),
    # NULL: a legacy profile-scoped enrollment (migration 0010).
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=True),
    Column("profile_id", Uuid(), ForeignKey("profiles.id"), nullable=False),
    Column("csr_pem", Text(), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("requester", Text(), nullable=False),
    Column("requester_id", Uuid(), nullable=True),
    Column("method", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("step", Integer(), nullable=False),
    Column("approvals", JSON(), nullable=False),
    Column("requested_validity_days", Integer(), nullable=True),
    Column("renewed_from", Uuid(), ForeignKey("certificates.id"), nullable=True),
    Column("certificate_id", Uuid(), ForeignKey("certificates.id"), nullable=True),
    Column("comment", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("version", Integer(), nullable=False),
    Index(None, "application_id"),
    Index(None, "state"),
    Index(None, "fingerprint"),
    Index(None, "requester_id"),
    Index(None, "profile_id"),
    Index(
        LIVE_FINGERPRINT_INDEX,
        "fingerprint",
        unique=True,
        sqlite_where=_LIVE_ONLY,
        postgresql_where=_LIVE_ONLY,
    ),
)
