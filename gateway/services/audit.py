"""Audit events written by admin operations, in the same transaction as the change, and
the audit log's queries (REST API and CLI)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.errors import NotFound
from gateway.core.model import AuditEvent, Page, new_id
from gateway.targets import active_project
from store.filters import AuditFilter

if TYPE_CHECKING:
    # Only for annotations: the service graph imports this module (through approvals).
    from gateway.services.graph import Services


@dataclass(frozen=True)
class Actor:
    """Who is acting and from where; `name` is what the audit log shows."""

    name: str
    source_ip: str | None = None
    principal_id: uuid.UUID | None = None  # set when the actor is an authenticated principal


SYSTEM = Actor("system")


def event(
    actor: Actor,
    at: datetime,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    *,
    project_id: uuid.UUID | None = None,
    application_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        id=new_id(),
        at=at,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        project_id=project_id,
        application_id=application_id,
        source_ip=actor.source_ip,
        details=details or {},
    )


async def list_events(
    services: Services,
    audit_filter: AuditFilter,
    limit: int,
    offset: int,
    *,
    application: str | None = None,
) -> Page[AuditEvent]:
    """A page of the audit log, newest first. `application` names an application of the
    active project by slug (read in the same transaction): only its events."""
    async with services.db.transaction(read_only=True) as tx:
        if application:
            project = await active_project(tx)
            app = await tx.applications.get_by_slug(project.id, application)
            if app is None:
                raise NotFound(f"application '{application}' not found")
            audit_filter = dataclasses.replace(audit_filter, application_id=app.id)
        return await tx.audit.list(audit_filter, limit, offset)


async def application_slugs(
    services: Services, events: Iterable[AuditEvent]
) -> dict[uuid.UUID, str]:
    """The slug of each application the events name ("?" for one deleted since)."""
    slugs: dict[uuid.UUID, str] = {}
    async with services.db.transaction(read_only=True) as tx:
        for e in events:
            if e.application_id and e.application_id not in slugs:
                found = await tx.applications.get(e.application_id)
                slugs[e.application_id] = found.slug if found else "?"
    return slugs
