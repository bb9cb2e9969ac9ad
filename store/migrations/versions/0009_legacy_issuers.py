"""Legacy projects and their issuers: export marks, external CAs, self-signed profiles.

Revision ID: 0009
Revises: 0008

* `projects.exported_at`: set when a legacy project was exported into the active one;
  such a project is read-only (no new CA, policy or profile).
* `certificate_authorities.exportable`: false for a CA whose key must not leave it (an
  export skips it and every profile on it). An *external* CA (kind "external") holds a
  certificate only: its `encrypted_key` is empty.
* `profiles.issuer_type` ("ca" or "self-signed") and a nullable `profiles.ca_id`: a
  self-signed profile names no CA, and its certificates (`certificates.ca_id` NULL) are
  signed by their own key.

SQLite cannot drop NOT NULL in place: batch mode rebuilds `profiles` and `certificates`.
Other tables reference both, so foreign keys are checked at commit (defer_foreign_keys),
when the rebuilt tables hold the same ids again; the rebuild drops the configuration
generation triggers of `profiles` (migration 0007), which are created again here.

Written out in full so that it never changes once released.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE config_generation SET value = value + 1 WHERE id = 1"


def _sqlite_triggers(create: bool) -> None:
    for operation in ("INSERT", "UPDATE", "DELETE"):
        name = f"cg_profiles_{operation.lower()}"
        if create:
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {operation} ON profiles "
                f"BEGIN {_BUMP}; END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _nullable_ca_ids(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA defer_foreign_keys = ON")
        _sqlite_triggers(create=False)
    for table in ("profiles", "certificates"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("ca_id", existing_type=sa.Uuid(), nullable=nullable)
    if sqlite:
        _sqlite_triggers(create=True)


def upgrade() -> None:
    op.add_column("projects", sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "certificate_authorities",
        sa.Column("exportable", sa.Boolean(), nullable=False, server_default=sa.text("true")),
    )
    op.add_column(
        "profiles",
        sa.Column("issuer_type", sa.String(16), nullable=False, server_default=sa.text("'ca'")),
    )
    _nullable_ca_ids(nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM certificates WHERE ca_id IS NULL")
    op.execute("DELETE FROM profiles WHERE ca_id IS NULL")
    _nullable_ca_ids(nullable=False)
    op.drop_column("profiles", "issuer_type")
    op.drop_column("certificate_authorities", "exportable")
    op.drop_column("projects", "exported_at")
