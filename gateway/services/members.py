"""Application members: list, add, change role, remove. Each use case opens its own
transaction; every change is audited in it, against the application, so that
application's Auditors see who gained or lost access."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import Application, AppRole, AuditEvent, Member, Principal, ProductRole
from gateway.services.audit import Actor, event

if TYPE_CHECKING:
    # Only for annotations: gateway.services.auth imports this module (removal_event).
    from gateway.services.graph import Services
    from store.db import Tx

ROLES = ", ".join(r.value for r in AppRole)


def parse_role(value: Any) -> AppRole:
    """A role name from a request; `invalid_role` is the stable code clients match on."""
    if isinstance(value, str):
        try:
            return AppRole(value)
        except ValueError:
            pass
    raise InvalidInput(f"unknown role {value!r} (allowed: {ROLES})", code="invalid_role")


async def find_principal(tx: Tx, ref: Any, *, within: Application | None = None) -> Principal:
    """A principal by id or by name (ids are tried first; names cannot be UUIDs only by
    convention, so an id match wins).

    `within`: the caller is an application's Admin, not a Product Admin. It may not look
    principals up outside that application: by name it finds only the application's own
    members (a name is guessable, an id is not: a new member tells the Admin its id, which
    GET /api/v1/me shows), and it never finds a Product Admin it could add to its
    application. Either answers "not found", like a principal that does not exist."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("principal must be a principal id or name")
    principal, by_name = None, False
    try:
        principal = await tx.principals.get(uuid.UUID(ref))
    except ValueError:
        pass
    if principal is None:
        principal, by_name = await tx.principals.get_by_name(ref.strip()), True
    if principal is not None and within is not None:
        if principal.product_role is ProductRole.ADMIN:
            principal = None
        elif by_name and await tx.members.get(within.id, principal.id) is None:
            principal = None
    if principal is None:
        hint = " (outside the application, name a principal by its id)" if within else ""
        raise NotFound(f"principal {ref!r} not found{hint}")
    return principal


def _event_id(app: Application, principal_id: uuid.UUID) -> str:
    return f"{app.id}:{principal_id}"


async def list_members(
    services: Services, app: Application
) -> list[tuple[Member, Principal | None]]:
    """The application's members, each with its principal."""
    async with services.db.transaction(read_only=True) as tx:
        members = await tx.members.list(app.id)
        principals = await tx.principals.get_many(m.principal_id for m in members)
    return [(m, principals.get(m.principal_id)) for m in members]


async def add_member(
    services: Services,
    actor: Actor,
    app: Application,
    principal_ref: Any,
    role: AppRole,
    *,
    product_admin: bool = True,
) -> tuple[Member, Principal]:
    """Give a principal (by id or name: find_principal) a role in the application;
    `product_admin` False: the caller is only the application's Admin."""
    async with services.db.transaction() as tx:
        principal = await find_principal(tx, principal_ref, within=None if product_admin else app)
        at = services.clock.now()
        member = Member(app.id, principal.id, role, at)
        await tx.members.add(member)  # Conflict(already_member) on a second add
        await tx.audit.add(
            event(
                actor,
                at,
                "member.added",
                "member",
                _event_id(app, principal.id),
                project_id=app.project_id,
                application_id=app.id,
                details={
                    "principal_id": str(principal.id),
                    "principal": principal.name,
                    "before": None,
                    "after": {"role": role.value},
                },
            )
        )
    return member, principal


async def change_role(
    services: Services, actor: Actor, app: Application, principal_id: uuid.UUID, role: AppRole
) -> tuple[Member, Principal | None]:
    """The member with its new role, and its principal."""
    async with services.db.transaction() as tx:
        at = services.clock.now()
        before = await tx.members.get(app.id, principal_id)
        if before is None:
            raise NotFound("the principal is not a member of this application")
        after = await tx.members.set_role(app.id, principal_id, role)
        if after is None:  # removed by a concurrent request since the read above
            raise NotFound("the principal is not a member of this application")
        principal = await tx.principals.get(principal_id)
        await tx.audit.add(
            event(
                actor,
                at,
                "member.role_changed",
                "member",
                _event_id(app, principal_id),
                project_id=app.project_id,
                application_id=app.id,
                details={
                    "principal_id": str(principal_id),
                    "principal": principal.name if principal else None,
                    "before": {"role": before.role.value},
                    "after": {"role": role.value},
                },
            )
        )
    return after, principal


async def remove_member(
    services: Services, actor: Actor, app: Application, principal_id: uuid.UUID
) -> Member:
    async with services.db.transaction() as tx:
        at = services.clock.now()
        removed = await tx.members.remove(app.id, principal_id)
        if removed is None:
            raise NotFound("the principal is not a member of this application")
        principal = await tx.principals.get(principal_id)
        await tx.audit.add(
            removal_event(actor, at, app.project_id, removed, principal.name if principal else None)
        )
    return removed


def removal_event(
    actor: Actor,
    at: datetime,
    project_id: uuid.UUID | None,
    member: Member,
    principal_name: str | None,
    reason: str | None = None,
) -> AuditEvent:
    details: dict[str, Any] = {
        "principal_id": str(member.principal_id),
        "principal": principal_name,
        "before": {"role": member.role.value},
        "after": None,
    }
    if reason:
        details["reason"] = reason
    return event(
        actor,
        at,
        "member.removed",
        "member",
        f"{member.application_id}:{member.principal_id}",
        project_id=project_id,
        application_id=member.application_id,
        details=details,
    )
