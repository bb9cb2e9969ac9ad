"""Audit events written by admin operations, in the same transaction as the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.model import AuditEvent, new_id


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
