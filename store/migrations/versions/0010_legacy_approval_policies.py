"""Legacy (project-level) approval policies and the requests they hold back.

Revision ID: 0010
Revises: 0009

* `approval_policies.application_id` becomes nullable and `approval_policies.project_id`
  (nullable, references `projects`) is added: a row with application_id NULL and a
  project_id is a legacy project's policy for the legacy profile-scoped enrollment of one
  of its profiles. At most one per profile: a partial unique index on profile_id WHERE
  application_id IS NULL (the existing (application_id, profile_id) unique constraint
  treats NULLs as distinct).
* `certificate_requests.application_id` becomes nullable: a request held by a legacy
  policy has no application.

SQLite: neither table is rebuilt. As in 0009, batch mode (copy, drop, rename) cannot run
inside the migration's transaction with foreign keys on (certificate_requests is
referenced by nothing, but approval_policies' rebuild would also have to recreate the
cg_approval_policies_* triggers of 0007); SQLite documents rewriting the CREATE
statement under writable_schema for dropping NOT NULL and foreign key constraints
(https://www.sqlite.org/lang_altertable.html section 7), and ADD COLUMN may carry a
REFERENCES clause when the column defaults to NULL. Rows, indexes and the 0007 triggers
are untouched.

Written out in full so that it never changes once released.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEGACY_INDEX = "uq_approval_policies_legacy_profile_id"
_PROJECT_INDEX = "ix_approval_policies_project_id"
_PROJECT_FK = "fk_approval_policies_project_id_projects"
_LEGACY_ONLY = sa.text("application_id IS NULL")
# How SQLite spells the added column in approval_policies' CREATE statement.
_SQLITE_PROJECT_COLUMN = f"project_id CHAR(32) CONSTRAINT {_PROJECT_FK} REFERENCES projects (id)"


def _sqlite_rewrite(table: str, find: str, put: str) -> None:
    """Replace `find` by `put` once in the table's CREATE statement (see the docstring)."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if find not in sql:
        raise RuntimeError(f"unexpected definition of {table}: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
        (sql.replace(find, put, 1), table),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _nullable_application_ids(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("approval_policies", "certificate_requests"):
        if sqlite:
            strict, loose = "application_id CHAR(32) NOT NULL,", "application_id CHAR(32),"
            _sqlite_rewrite(
                table, loose if not nullable else strict, strict if not nullable else loose
            )
        else:
            op.alter_column(table, "application_id", existing_type=sa.Uuid(), nullable=nullable)


def upgrade() -> None:
    _nullable_application_ids(nullable=True)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE approval_policies ADD COLUMN {_SQLITE_PROJECT_COLUMN}")
    else:
        op.add_column("approval_policies", sa.Column("project_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(_PROJECT_FK, "approval_policies", "projects", ["project_id"], ["id"])
    op.create_index(_PROJECT_INDEX, "approval_policies", ["project_id"])
    op.create_index(
        _LEGACY_INDEX,
        "approval_policies",
        ["profile_id"],
        unique=True,
        sqlite_where=_LEGACY_ONLY,
        postgresql_where=_LEGACY_ONLY,
    )


def downgrade() -> None:
    op.execute("DELETE FROM certificate_requests WHERE application_id IS NULL")
    op.execute("DELETE FROM approval_policies WHERE application_id IS NULL")
    if op.get_bind().dialect.name == "postgresql":
        # The deletes queued 0007's deferred cg_ trigger events, and PostgreSQL refuses to
        # ALTER a table with pending trigger events: fire them now.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.drop_index(_LEGACY_INDEX, table_name="approval_policies")
    op.drop_index(_PROJECT_INDEX, table_name="approval_policies")
    if op.get_bind().dialect.name == "sqlite":
        # DROP COLUMN refuses a column under a foreign key: drop the constraint first.
        _sqlite_rewrite("approval_policies", _SQLITE_PROJECT_COLUMN, "project_id CHAR(32)")
    else:
        op.drop_constraint(_PROJECT_FK, "approval_policies", type_="foreignkey")
    op.drop_column("approval_policies", "project_id")
    _nullable_application_ids(nullable=False)
