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

SQLite cannot drop NOT NULL in place, and batch mode (copy, drop, rename) cannot be used
here: other tables reference `profiles` and `certificates`, and inside the migration's
transaction foreign keys cannot be switched off, so dropping the old table would leave
violations that the rename never clears. SQLite documents a narrower way for exactly this
change ("Removing ... NOT NULL constraints", https://www.sqlite.org/lang_altertable.html
section 7): rewrite the table's CREATE statement in sqlite_schema under writable_schema
and bump schema_version. The stored rows are untouched, and so are indexes and triggers.

Written out in full so that it never changes once released.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def _sqlite_set_not_null(table: str, column: str, not_null: bool) -> None:
    bind = op.get_bind()
    find = f"{column} CHAR(32)" + ("" if not_null else " NOT NULL")
    put = f"{column} CHAR(32)" + (" NOT NULL" if not_null else "")
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if find + "," not in sql:
        raise RuntimeError(f"unexpected definition of {table}.{column}: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
        (sql.replace(find + ",", put + ",", 1), table),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _nullable_ca_ids(nullable: bool) -> None:
    for table in ("profiles", "certificates"):
        if op.get_bind().dialect.name == "sqlite":
            _sqlite_set_not_null(table, "ca_id", not_null=not nullable)
        else:
            op.alter_column(table, "ca_id", existing_type=sa.Uuid(), nullable=nullable)


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
    if op.get_bind().dialect.name == "postgresql":
        # The delete queued 0007's deferred cg_ trigger events, and PostgreSQL refuses to
        # ALTER a table with pending trigger events: fire them now.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    _nullable_ca_ids(nullable=False)
    op.drop_column("profiles", "issuer_type")
    op.drop_column("certificate_authorities", "exportable")
    op.drop_column("projects", "exported_at")
