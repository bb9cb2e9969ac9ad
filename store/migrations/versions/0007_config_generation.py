"""The configuration generation and the triggers that raise it.

Revision ID: 0007
Revises: 0006

Every gateway process caches configuration reads (store.cache) and compares the cached
generation with this row; the triggers make every write to a configuration table, from
any process or tool, visible there. On PostgreSQL they are deferred constraint triggers
(run at commit): the row lock on the counter is then taken last, after every other lock
of the transaction, so two concurrent configuration writers cannot deadlock on it.

Written out in full (the table list is fixed here, not imported) so that it never changes
once released.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "organizations",
    "projects",
    "certificate_authorities",
    "policies",
    "profiles",
    "applications",
    "profile_attachments",
    "principals",
    "api_tokens",
    "secrets",
    "application_members",
    "approval_policies",
)
_BUMP = "UPDATE config_generation SET value = value + 1 WHERE id = 1"
_PG_FUNCTION = "certgate_bump_config_generation"


def upgrade() -> None:
    op.create_table(
        "config_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_generation"),
    )
    op.execute("INSERT INTO config_generation (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_BUMP}; RETURN NULL; END $$"
        )
        for table in _TABLES:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER cg_{table} AFTER INSERT OR UPDATE OR DELETE "
                f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
        return
    for table in _TABLES:
        for operation in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER cg_{table}_{operation.lower()} AFTER {operation} ON {table} "
                f"BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS cg_{table} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()")
    else:
        for table in _TABLES:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS cg_{table}_{operation}")
    op.drop_table("config_generation")
