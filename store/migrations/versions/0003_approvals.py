"""Approval policies and certificate requests.

Revision ID: 0003
Revises: 0002

Written out in full (not derived from store.tables_approvals) so that it never changes
once released; tests/integration/store/test_store_migrations.py checks it still matches.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_ONLY = sa.text("state IN ('open', 'approved')")


def _ts(name: str, nullable: bool = False) -> "sa.Column[object]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "approval_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("bypass", sa.JSON(), nullable=False),
        sa.Column("request_ttl_seconds", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_approval_policies"),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"],
            name="fk_approval_policies_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_approval_policies_profile_id_profiles"
        ),
        sa.UniqueConstraint(
            "application_id", "profile_id",
            name="uq_approval_policies_application_id_profile_id",
        ),
    )
    op.create_index("ix_approval_policies_profile_id", "approval_policies", ["profile_id"])
    op.create_table(
        "certificate_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("csr_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("requested_validity_days", sa.Integer(), nullable=True),
        sa.Column("renewed_from", sa.Uuid(), nullable=True),
        sa.Column("certificate_id", sa.Uuid(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_certificate_requests"),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"],
            name="fk_certificate_requests_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_certificate_requests_profile_id_profiles"
        ),
        sa.ForeignKeyConstraint(
            ["renewed_from"], ["certificates.id"],
            name="fk_certificate_requests_renewed_from_certificates",
        ),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"],
            name="fk_certificate_requests_certificate_id_certificates",
        ),
    )
    for column in ("application_id", "state", "fingerprint", "requester_id", "profile_id"):
        op.create_index(f"ix_certificate_requests_{column}", "certificate_requests", [column])
    # One live request per fingerprint (see store.tables_approvals).
    op.create_index(
        "uq_certificate_requests_live_fingerprint", "certificate_requests", ["fingerprint"],
        unique=True, sqlite_where=_LIVE_ONLY, postgresql_where=_LIVE_ONLY,
    )


def downgrade() -> None:
    op.drop_table("certificate_requests")
    op.drop_table("approval_policies")
