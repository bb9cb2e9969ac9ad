"""ACME: when a challenge's validation began, so validations orphaned by a crashed
process can be found and ended (protocols.acme.sweeper).

Revision ID: 0006
Revises: 0005

Written out in full (not derived from store.tables_acme) so that it never changes once
released; tests/integration/store/test_store_migrations.py checks it matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "acme_challenges", sa.Column("started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_acme_challenges_status_started_at", "acme_challenges", ["status", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_acme_challenges_status_started_at", table_name="acme_challenges")
    op.drop_column("acme_challenges", "started_at")
