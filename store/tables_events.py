"""Tables of alerts and their durable delivery (issue 13).

* `alerts`: an Application's alerts (application_id set), or a legacy project's
  (application_id NULL, project_id set). Filters and channels are JSON; a webhook's
  signing secret is not in them but in `secrets`, encrypted (gateway.pki.kms).
* `alert_deliveries`: the outbox. One row per event x alert x channel, inserted in the
  transaction of the change that caused it (an issuance, a revocation, an expiry scan),
  so a rolled-back change never sends and a committed one is never lost. Workers of every
  process claim due rows (status pending, or sending whose claim has lapsed), send them
  and record the outcome; `id` is the stable delivery id every attempt carries.
* `alert_expiry_notices`: one row per certificate x alert x mark (the threshold crossing,
  then one per day), inserted with the deliveries it causes: its primary key is what makes
  an expiry scan, in any process and after any restart, notify once.
* `event_leases`: named leases (the expiry scan's), so one process at a time scans.

Why a small outbox here and not a queue library: the candidates that keep jobs in a
database (procrastinate, pgqueuer, dramatiq-postgres) are PostgreSQL-only, those that do
SQLite (huey, dramatiq-sqlite) are synchronous and own their connection, and none can
enqueue inside the caller's SQLAlchemy transaction, which is the point of an outbox. The
claim is two statements on tables we already migrate and test on both databases.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from store.tables import metadata
from store.types import UtcDateTime

alerts = Table(
    "alerts",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("event", String(16), nullable=False),
    Column("alert_before", String(16), nullable=True),
    Column("filters", JSON(), nullable=False),
    Column("channels", JSON(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(None, "project_id"),
    Index(None, "application_id"),
    Index(None, "event"),
)

# No foreign key to alerts: a delivery being sent while its alert is deleted must not
# fail the delete; the service deletes an alert's deliveries with it.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("alert_id", Uuid(), nullable=False),
    Column("channel_index", Integer(), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The claim: due rows by status and time.
    Index(None, "status", "next_attempt_at"),
    Index(None, "alert_id", "created_at"),
)

alert_expiry_notices = Table(
    "alert_expiry_notices",
    metadata,
    Column("alert_id", Uuid(), nullable=False),
    Column("certificate_id", Uuid(), nullable=False),
    # "threshold:30d" for the crossing, "day:2026-12-03" for a daily reminder.
    Column("mark", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("alert_id", "certificate_id", "mark"),
    Index(None, "certificate_id"),
)

event_leases = Table(
    "event_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
