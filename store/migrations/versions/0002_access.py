"""Application members (access control).

Revision ID: 0002
Revises: 0001

Written out in full (not derived from store.tables_access) so that it never changes once
released; tests/integration/store/test_store_migrations.py checks it matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application_members",
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "application_id", "principal_id", name="pk_application_members"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"],
            name="fk_application_members_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"],
            name="fk_application_members_principal_id_principals",
        ),
    )
    op.create_index(
        "ix_application_members_principal_id", "application_members", ["principal_id"]
    )


def downgrade() -> None:
    op.drop_table("application_members")
