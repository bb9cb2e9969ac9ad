"""Applications of the active project and the profiles attached to them (members:
gateway.services.members).

Use cases open their own transaction: list_applications, add_application,
list_attachments, add_attachment, update_methods. `create_application` and `attach_profile`
work inside the caller's transaction (bootstrap) and are what the use cases wrap."""

from __future__ import annotations

from typing import Any

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.methods import check_methods
from gateway.core.model import (
    Application,
    AppRole,
    Principal,
    ProductRole,
    Profile,
    ProfileAttachment,
    new_id,
)
from gateway.services.audit import Actor, event
from gateway.services.catalog import check_slug
from gateway.services.certificates import resolve, resolve_application
from gateway.services.graph import Services
from gateway.targets import active_project
from store.db import Tx


async def create_application(
    services: Services, tx: Tx, actor: Actor, slug: str, name: str | None, description: str = ""
) -> Application:
    project = await active_project(tx)
    app = Application(
        id=new_id(),
        project_id=project.id,
        slug=check_slug(slug, "application slug"),
        name=(name or slug).strip(),
        description=description,
        created_at=services.clock.now(),
    )
    await tx.applications.add(app)
    await tx.audit.add(
        event(
            actor,
            app.created_at,
            "application.created",
            "application",
            app.id,
            project_id=project.id,
            application_id=app.id,
            details={"slug": app.slug},
        )
    )
    return app


async def attach_profile(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    methods: dict[str, dict[str, Any]] | None = None,
) -> ProfileAttachment:
    if profile.project_id != app.project_id:
        raise InvalidInput("only profiles of the active project can be attached to an application")
    if await tx.attachments.get(app.id, profile.id) is not None:
        raise Conflict(f"profile '{profile.slug}' is already attached to '{app.slug}'")
    attachment = ProfileAttachment(
        id=new_id(),
        application_id=app.id,
        profile_id=profile.id,
        methods=check_methods(methods if methods is not None else {"api": {"enabled": True}}),
        created_at=services.clock.now(),
    )
    await tx.attachments.add(attachment)
    await tx.audit.add(
        event(
            actor,
            attachment.created_at,
            "application.profile_attached",
            "attachment",
            attachment.id,
            project_id=app.project_id,
            application_id=app.id,
            details={"profile": profile.slug, "methods": attachment.methods},
        )
    )
    return attachment


async def list_applications(
    services: Services, principal: Principal
) -> list[tuple[Application, AppRole | None]]:
    """The active project's applications with the principal's role in each: every one for a
    Product Admin; for anyone else only those they are a member of, and none at all without
    the Product Member role (it is needed to reach any)."""
    async with services.db.transaction(read_only=True) as tx:
        project = await active_project(tx)
        items = await tx.applications.list(project.id)
        roles = {
            m.application_id: m.role for m in await tx.members.list_for_principal(principal.id)
        }
    if principal.product_role is not ProductRole.ADMIN:
        visible = principal.product_role is ProductRole.MEMBER
        items = [a for a in items if visible and a.id in roles]
    return [(a, roles.get(a.id)) for a in items]


async def add_application(
    services: Services, actor: Actor, slug: str, name: str | None, description: Any = ""
) -> Application:
    if not isinstance(description, str):
        raise InvalidInput("description must be a string")
    async with services.db.transaction() as tx:
        return await create_application(services, tx, actor, slug, name, description)


async def list_attachments(
    services: Services, app_slug: str
) -> list[tuple[ProfileAttachment, str]]:
    """An application's attached profiles, each with its profile's slug ("?" when gone)."""
    app = await resolve_application(services, app_slug)
    async with services.db.transaction(read_only=True) as tx:
        attachments = await tx.attachments.list(app.id)
        profiles = {a.profile_id: await tx.profiles.get(a.profile_id) for a in attachments}
    return [(a, p.slug if (p := profiles[a.profile_id]) else "?") for a in attachments]


async def add_attachment(
    services: Services,
    actor: Actor,
    app_slug: str,
    profile_slug: str,
    methods: dict[str, dict[str, Any]] | None = None,
) -> tuple[ProfileAttachment, Profile]:
    """Attach the active project's profile `profile_slug` to an application."""
    app = await resolve_application(services, app_slug)
    async with services.db.transaction() as tx:
        profile = await tx.profiles.get_by_slug(app.project_id, profile_slug)
        if profile is None:
            raise NotFound(f"profile '{profile_slug}' not found in the active project")
        attachment = await attach_profile(services, tx, actor, app, profile, methods)
    return attachment, profile


async def update_methods(
    services: Services, actor: Actor, app_slug: str, profile_slug: str, methods: Any
) -> tuple[ProfileAttachment, Profile]:
    """Merge `methods` into the enrollment methods of an attached profile."""
    target = await resolve(services, app_slug, profile_slug)
    changes = check_methods(methods)
    async with services.db.transaction() as tx:
        before = await tx.attachments.get(target.application.id, target.profile.id)
        assert before is not None
        merged = {**before.methods, **changes}
        updated = await tx.attachments.update_methods(before.id, merged)
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "application.enrollment_updated",
                "attachment",
                before.id,
                project_id=target.application.project_id,
                application_id=target.application.id,
                details={"profile": target.profile.slug, "before": before.methods, "after": merged},
            )
        )
    return updated, target.profile
