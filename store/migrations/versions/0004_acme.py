"""ACME server state.

Revision ID: 0004
Revises: 0003

Written out in full (not derived from store.tables_acme) so that it never changes once
released; tests/integration/store/test_store_migrations.py checks it matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_acme_nonces"),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("eab_kid", sa.String(128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("scope", "thumbprint", name="uq_acme_accounts_scope_thumbprint"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.JSON(), nullable=False),
        sa.Column("authorization_ids", sa.JSON(), nullable=False),
        sa.Column("expires", _TS, nullable=False),
        sa.Column("not_before", _TS, nullable=True),
        sa.Column("not_after", _TS, nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("certificate_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("replaces", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["acme_accounts.id"], name="fk_acme_orders_account_id_acme_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name="fk_acme_orders_certificate_id_certificates",
        ),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_index("ix_acme_orders_certificate_id", "acme_orders", ["certificate_id"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("identifier_type", sa.String(8), nullable=False),
        sa.Column("identifier_value", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_authorizations"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["acme_accounts.id"],
            name="fk_acme_authorizations_account_id_acme_accounts",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["acme_orders.id"], name="fk_acme_authorizations_order_id_acme_orders"
        ),
    )
    op.create_index("ix_acme_authorizations_order_id", "acme_authorizations", ["order_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("authorization_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated", _TS, nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_challenges"),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["acme_authorizations.id"],
            name="fk_acme_challenges_authorization_id_acme_authorizations",
        ),
    )
    op.create_index("ix_acme_challenges_authorization_id", "acme_challenges", ["authorization_id"])


def downgrade() -> None:
    op.drop_table("acme_challenges")
    op.drop_table("acme_authorizations")
    op.drop_table("acme_orders")
    op.drop_table("acme_accounts")
    op.drop_table("acme_nonces")
