"""Alerts, the delivery outbox, expiry notices and leases (store.tables_events)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from gateway.core.alerts import (
    Alert,
    AlertEvent,
    AlertFilter,
    Channel,
    ChannelType,
    Delivery,
    DeliveryStatus,
    FilterField,
    FilterOperator,
)
from gateway.core.model import Certificate, CertificateStatus, Page
from store import tables
from store.repos._base import Repository
from store.repos.certificates import _certificate
from store.tables_events import alert_deliveries as _d
from store.tables_events import alert_expiry_notices as _n
from store.tables_events import alerts as _a
from store.tables_events import event_leases as _l

_PENDING = DeliveryStatus.PENDING.value
_SENDING = DeliveryStatus.SENDING.value


def channel_json(channel: Channel) -> dict[str, Any]:
    out: dict[str, Any] = {"type": channel.type.value, "id": str(channel.id)}
    if channel.url is not None:
        out["url"] = channel.url
    if channel.to:
        out["to"] = list(channel.to)
    if channel.routing_key is not None:
        out["routing_key"] = channel.routing_key
    return out


def _channel(data: dict[str, Any]) -> Channel:
    return Channel(
        type=ChannelType(data["type"]),
        id=uuid.UUID(data["id"]),
        url=data.get("url"),
        to=tuple(data.get("to", ())),
        routing_key=data.get("routing_key"),
    )


def _alert(row: RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        project_id=row["project_id"],
        application_id=row["application_id"],
        name=row["name"],
        event=AlertEvent(row["event"]),
        alert_before=row["alert_before"],
        filters=tuple(
            AlertFilter(FilterField(f["field"]), FilterOperator(f["operator"]), f["value"])
            for f in row["filters"]
        ),
        channels=tuple(_channel(c) for c in row["channels"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "project_id": alert.project_id,
        "application_id": alert.application_id,
        "name": alert.name,
        "event": alert.event.value,
        "alert_before": alert.alert_before,
        "filters": [
            {"field": f.field.value, "operator": f.operator.value, "value": f.value}
            for f in alert.filters
        ],
        "channels": [channel_json(c) for c in alert.channels],
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
    }


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=row["id"],
        alert_id=row["alert_id"],
        channel_index=row["channel_index"],
        event_type=row["event_type"],
        payload=row["payload"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _scope(project_id: uuid.UUID, application_id: uuid.UUID | None) -> Any:
    """The alerts that hear a certificate of this project and application (see
    gateway.core.alerts.in_scope)."""
    if application_id is not None:
        return _a.c.application_id == application_id
    return and_(_a.c.application_id.is_(None), _a.c.project_id == project_id)


class AlertRepository(Repository):
    table = _a
    what = "alert"

    async def add(self, alert: Alert) -> None:
        await self._insert(_alert_values(alert))

    async def get(self, alert_id: uuid.UUID) -> Alert | None:
        row = await self._get_by(_a.c.id == alert_id)
        return _alert(row) if row else None

    async def list_for(
        self, project_id: uuid.UUID, application_id: uuid.UUID | None
    ) -> builtins.list[Alert]:
        """An application's alerts, or (application_id None) a legacy project's."""
        rows = await self._all(
            select(_a).where(_scope(project_id, application_id)).order_by(_a.c.created_at, _a.c.id)
        )
        return [_alert(r) for r in rows]

    async def listening(
        self, event: AlertEvent, project_id: uuid.UUID, application_id: uuid.UUID | None
    ) -> builtins.list[Alert]:
        """The alerts on `event` in scope of a certificate (filters not yet applied)."""
        rows = await self._all(
            select(_a)
            .where(_a.c.event == event.value, _scope(project_id, application_id))
            .order_by(_a.c.created_at, _a.c.id)
        )
        return [_alert(r) for r in rows]

    async def of_event(self, event: AlertEvent) -> builtins.list[Alert]:
        rows = await self._all(
            select(_a).where(_a.c.event == event.value).order_by(_a.c.created_at, _a.c.id)
        )
        return [_alert(r) for r in rows]

    async def update(self, alert: Alert) -> Alert | None:
        values = _alert_values(alert)
        del values["id"], values["created_at"]
        row = await self._update_returning(
            update(_a).where(_a.c.id == alert.id).values(**values).returning(*_a.c)
        )
        return _alert(row) if row else None

    async def delete(self, alert_id: uuid.UUID) -> bool:
        """Delete an alert with its deliveries and expiry notices; True if it existed."""
        await self._session.execute(delete(_d).where(_d.c.alert_id == alert_id))
        await self._session.execute(delete(_n).where(_n.c.alert_id == alert_id))
        result = await self._session.execute(
            delete(_a).where(_a.c.id == alert_id).returning(_a.c.id)
        )
        return result.first() is not None


class DeliveryRepository(Repository):
    table = _d
    what = "delivery"

    async def add_many(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await self._session.execute(
            _d.insert(),
            [
                {
                    "id": d.id,
                    "alert_id": d.alert_id,
                    "channel_index": d.channel_index,
                    "event_type": d.event_type,
                    "payload": d.payload,
                    "status": d.status.value,
                    "attempts": d.attempts,
                    "next_attempt_at": d.next_attempt_at,
                    "last_error": d.last_error,
                    "created_at": d.created_at,
                    "updated_at": d.updated_at,
                }
                for d in deliveries
            ],
        )

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        row = await self._get_by(_d.c.id == delivery_id)
        return _delivery(row) if row else None

    async def list_for_alert(self, alert_id: uuid.UUID, limit: int, offset: int) -> Page[Delivery]:
        """Newest first."""
        return await self._page(
            [_d.c.alert_id == alert_id],
            (_d.c.created_at.desc(), _d.c.id.desc()),
            limit,
            offset,
            _delivery,
        )

    async def any_due(self, now: datetime) -> bool:
        """Whether a claim would find something: a read, so that an idle worker's poll
        takes no write lock (SQLite has one for the whole database)."""
        due = select(_d.c.id).where(
            or_(_d.c.status == _PENDING, _d.c.status == _SENDING), _d.c.next_attempt_at <= now
        )
        return (await self._session.execute(due.limit(1))).first() is not None

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> builtins.list[Delivery]:
        """Take up to `limit` due deliveries for this worker: pending ones whose time has
        come, and `sending` ones whose claim lapsed (their process died mid-send). Each
        comes back `sending`, its attempt counted, claimed until now + lease.

        PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows
        without waiting. SQLite: the write transaction began IMMEDIATE (store.db), so no
        other writer runs between this SELECT and the UPDATE (SQLite has no row locks and
        SQLAlchemy leaves FOR UPDATE out there).
        """
        due = (
            select(_d.c.id)
            .where(
                or_(_d.c.status == _PENDING, _d.c.status == _SENDING),
                _d.c.next_attempt_at <= now,
            )
            .order_by(_d.c.next_attempt_at)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = [r for (r,) in (await self._session.execute(due)).all()]
        if not ids:
            return []
        result = await self._session.execute(
            update(_d)
            .where(_d.c.id.in_(ids))
            .values(
                status=_SENDING,
                attempts=_d.c.attempts + 1,
                next_attempt_at=now + lease,
                updated_at=now,
            )
            .returning(*_d.c)
        )
        return sorted((_delivery(r) for r in result.mappings().all()), key=lambda d: d.created_at)

    async def finish(
        self,
        claimed: Delivery,
        status: DeliveryStatus,
        now: datetime,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record an attempt's outcome, only if the row is still the claim `claimed` (a
        worker whose claim lapsed and was taken over must not overwrite the newer one)."""
        result = await self._session.execute(
            update(_d)
            .where(
                _d.c.id == claimed.id,
                _d.c.status == _SENDING,
                _d.c.attempts == claimed.attempts,
            )
            .values(
                status=status.value,
                next_attempt_at=next_attempt_at or now,
                last_error=error[:2000] if error else None,
                updated_at=now,
            )
            .returning(_d.c.id)
        )
        return result.first() is not None

    async def count(self, *statuses: DeliveryStatus) -> int:
        rows = await self._session.execute(
            select(_d.c.id).where(_d.c.status.in_([s.value for s in statuses]))
        )
        return len(rows.all())


class ExpiryRepository(Repository):
    """What expiry scans read (expiring certificates) and write (the notices)."""

    table = _n
    what = "expiry notice"

    async def expiring(
        self, alert: Alert, now: datetime, horizon: datetime, limit: int
    ) -> builtins.list[tuple[Certificate, str, str | None]]:
        """Active certificates in the alert's scope that expire after `now` and before
        `horizon`, not renewed (no certificate names them in renewed_from), each with its
        profile slug and application slug."""
        c, p, app = tables.certificates, tables.profiles, tables.applications
        successor = tables.certificates.alias("successor")
        where = [
            c.c.status == CertificateStatus.ACTIVE.value,
            c.c.not_after > now,
            c.c.not_after <= horizon,
            ~exists().where(successor.c.renewed_from == c.c.id),
        ]
        if alert.application_id is not None:
            where.append(c.c.application_id == alert.application_id)
        else:
            where.extend((c.c.application_id.is_(None), c.c.project_id == alert.project_id))
        rows = await self._all(
            select(c, p.c.slug.label("profile_slug"), app.c.slug.label("application_slug"))
            .join(p, p.c.id == c.c.profile_id)
            .outerjoin(app, app.c.id == c.c.application_id)
            .where(*where)
            .order_by(c.c.not_after, c.c.id)
            .limit(limit)
        )
        return [(_certificate(r), r["profile_slug"], r["application_slug"]) for r in rows]

    async def add_notice(
        self, alert_id: uuid.UUID, certificate_id: uuid.UUID, mark: str, now: datetime
    ) -> bool:
        """Record a notice; False when it was recorded before (by any process): the
        primary key decides, so two scans never both notify."""
        dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = (
            dialect_insert(_n)
            .values(alert_id=alert_id, certificate_id=certificate_id, mark=mark, created_at=now)
            .on_conflict_do_nothing(index_elements=["alert_id", "certificate_id", "mark"])
            .returning(_n.c.mark)
        )
        result = await self._session.execute(statement)
        return result.first() is not None

    async def has_notice(self, alert_id: uuid.UUID, certificate_id: uuid.UUID, mark: str) -> bool:
        row = await self._get_by(
            _n.c.alert_id == alert_id, _n.c.certificate_id == certificate_id, _n.c.mark == mark
        )
        return row is not None


class LeaseRepository(Repository):
    table = _l
    what = "lease"

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take (or keep) the named lease until now + ttl; False while another holder's
        lease has not run out. One statement: the insert, or the update of a lapsed or
        own lease, decided by the row itself."""
        dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        values = dialect_insert(_l).values(name=name, holder=holder, expires_at=now + ttl)
        statement = values.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": values.excluded.holder, "expires_at": values.excluded.expires_at},
            where=or_(_l.c.expires_at <= now, _l.c.holder == holder),
        ).returning(_l.c.holder)
        result = await self._session.execute(statement)
        return result.first() is not None

    async def release(self, name: str, holder: str) -> None:
        await self._session.execute(delete(_l).where(_l.c.name == name, _l.c.holder == holder))
