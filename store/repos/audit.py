"""The audit trail."""

from __future__ import annotations

import builtins

from sqlalchemy import ColumnElement
from sqlalchemy.engine import RowMapping

from gateway.core.model import AuditEvent, Page
from store import tables
from store.filters import AuditFilter
from store.repos._base import Repository

_t = tables.audit_events


def _event(row: RowMapping) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        project_id=row["project_id"],
        application_id=row["application_id"],
        source_ip=row["source_ip"],
        details=dict(row["details"]),
    )


def _conditions(f: AuditFilter) -> builtins.list[ColumnElement[bool]]:
    where: builtins.list[ColumnElement[bool]] = []
    if f.project_id is not None:
        where.append(_t.c.project_id == f.project_id)
    if f.application_id is not None:
        where.append(_t.c.application_id == f.application_id)
    if f.actor is not None:
        where.append(_t.c.actor == f.actor)
    if f.action is not None:
        where.append(_t.c.action == f.action)
    if f.target_id is not None:
        where.append(_t.c.target_id == f.target_id)
    if f.since is not None:
        where.append(_t.c.at >= f.since)
    if f.until is not None:
        where.append(_t.c.at < f.until)
    return where


class AuditRepository(Repository):
    table = _t
    what = "audit event"

    async def add(self, event: AuditEvent) -> None:
        await self._insert(
            {
                "id": event.id,
                "at": event.at,
                "actor": event.actor,
                "action": event.action,
                "target_type": event.target_type,
                "target_id": event.target_id,
                "project_id": event.project_id,
                "application_id": event.application_id,
                "source_ip": event.source_ip,
                "details": event.details,
            },
            keep_transaction=False,
        )

    async def list(self, filter: AuditFilter, limit: int = 50, offset: int = 0) -> Page[AuditEvent]:
        """Newest first (at, then id for a stable order)."""
        return await self._page(
            _conditions(filter), (_t.c.at.desc(), _t.c.id.desc()), limit, offset, _event
        )
