"""Alerts and their durable delivery: alerts, the delivery outbox, expiry notices and
leases (see store/tables_events.py for what each holds).

Revision ID: 0011
Revises: 0010

New tables only: nothing existing is altered, so SQLite needs none of the schema rewrites
of 0009 and 0010.

Written out in full so that it never changes once released.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("alert_before", sa.String(16), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_alerts_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_alerts_application_id_applications"
        ),
    )
    op.create_index("ix_alerts_project_id", "alerts", ["project_id"])
    op.create_index("ix_alerts_application_id", "alerts", ["application_id"])
    op.create_index("ix_alerts_event", "alerts", ["event"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("channel_index", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index(
        "ix_alert_deliveries_status_next_attempt_at",
        "alert_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_alert_deliveries_alert_id_created_at", "alert_deliveries", ["alert_id", "created_at"]
    )
    op.create_table(
        "alert_expiry_notices",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("certificate_id", sa.Uuid(), nullable=False),
        sa.Column("mark", sa.String(32), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "alert_id", "certificate_id", "mark", name="pk_alert_expiry_notices"
        ),
    )
    op.create_index(
        "ix_alert_expiry_notices_certificate_id", "alert_expiry_notices", ["certificate_id"]
    )
    op.create_table(
        "event_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_leases"),
    )


def downgrade() -> None:
    op.drop_table("event_leases")
    op.drop_table("alert_expiry_notices")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
