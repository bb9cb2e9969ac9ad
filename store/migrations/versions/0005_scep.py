"""SCEP server state: dynamic challenges and transactions.

Revision ID: 0005
Revises: 0004

Written out in full (not derived from store.tables_scep) so that it never changes once
released; tests/integration/store/test_store_migrations.py checks it matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scep_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("consumed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scep_challenges"),
        sa.UniqueConstraint("digest", name="uq_scep_challenges_digest"),
    )
    op.create_index(
        "ix_scep_challenges_scope_expires_at", "scep_challenges", ["scope", "expires_at"]
    )
    op.create_table(
        "scep_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("request_key", sa.String(64), nullable=False),
        sa.Column("message_type", sa.Integer(), nullable=False),
        sa.Column("csr_digest", sa.String(64), nullable=False),
        sa.Column("csr_der", sa.LargeBinary(), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("renewed_from", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("certificate_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("fail_info", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scep_transactions"),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name="fk_scep_transactions_certificate_id_certificates",
        ),
        sa.UniqueConstraint(
            "scope",
            "transaction_id",
            "request_key",
            name="uq_scep_transactions_scope_transaction_id_request_key",
        ),
    )
    op.create_index(
        "ix_scep_transactions_certificate_id", "scep_transactions", ["certificate_id"]
    )


def downgrade() -> None:
    op.drop_table("scep_transactions")
    op.drop_table("scep_challenges")
