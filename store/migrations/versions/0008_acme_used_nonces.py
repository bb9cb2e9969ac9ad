"""ACME: nonces are HMAC-authenticated and only recorded once used.

Revision ID: 0008
Revises: 0007

Handing out a nonce used to insert a row into `acme_nonces` (and accepting it deleted the
row). Nonces now carry their own proof of origin (protocols.acme.nonces), so only their
use is recorded, in `acme_used_nonces`; its primary key rejects a second use (RFC 8555
§6.5). The rows of `acme_nonces` were nonces handed out but never used: clients that hold
one get badNonce once and retry with the fresh nonce that error carries (§6.5).

Written out in full (not derived from store.tables_acme) so that it never changes once
released; tests/integration/store/test_store_migrations.py checks it matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_used_nonces",
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_acme_used_nonces"),
    )
    op.create_index("ix_acme_used_nonces_expires_at", "acme_used_nonces", ["expires_at"])
    op.drop_index("ix_acme_nonces_expires_at", table_name="acme_nonces")
    op.drop_table("acme_nonces")


def downgrade() -> None:
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_acme_nonces"),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])
    op.drop_index("ix_acme_used_nonces_expires_at", table_name="acme_used_nonces")
    op.drop_table("acme_used_nonces")
