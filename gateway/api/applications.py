"""Applications (active project only) and their attached profiles."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import PRINCIPAL, actor, json_body, services
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import ProductRole
from gateway.services import catalog
from gateway.services.audit import event
from gateway.services.certificates import resolve, resolve_application


async def list_applications(request: web.Request) -> web.Response:
    """Every application for a Product Admin; for anyone else only those they are a member
    of, and none at all without the Product Member role (it is needed to reach any)."""
    principal = request[PRINCIPAL].principal
    async with services(request).db.transaction(read_only=True) as tx:
        project = await catalog.active_project(tx)
        items = await tx.applications.list(project.id)
        roles = {
            m.application_id: m.role for m in await tx.members.list_for_principal(principal.id)
        }
    if principal.product_role is not ProductRole.ADMIN:
        visible = principal.product_role is ProductRole.MEMBER
        items = [a for a in items if visible and a.id in roles]
    return web.json_response(
        {
            "items": [
                {**ser.application(a), "role": roles[a.id].value if a.id in roles else None}
                for a in items
            ]
        }
    )


async def create_application(request: web.Request) -> web.Response:
    body = await json_body(request)
    description = body.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("description must be a string")
    svc = services(request)
    async with svc.db.transaction() as tx:
        app = await catalog.create_application(
            svc, tx, actor(request), body.get("slug", ""), body.get("name"), description
        )
    return web.json_response(ser.application(app), status=201)


async def get_application(request: web.Request) -> web.Response:
    app = await resolve_application(services(request), request.match_info["app"])
    return web.json_response(ser.application(app))


async def list_attachments(request: web.Request) -> web.Response:
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    async with svc.db.transaction(read_only=True) as tx:
        attachments = await tx.attachments.list(app.id)
        slugs = {a.profile_id: (await tx.profiles.get(a.profile_id)) for a in attachments}
    return web.json_response(
        {
            "items": [
                ser.attachment(a, p.slug if (p := slugs[a.profile_id]) else "?")
                for a in attachments
            ]
        }
    )


async def attach_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    async with svc.db.transaction() as tx:
        profile = await tx.profiles.get_by_slug(app.project_id, str(body.get("profile", "")))
        if profile is None:
            raise NotFound(f"profile '{body.get('profile')}' not found in the active project")
        attachment = await catalog.attach_profile(
            svc, tx, actor(request), app, profile, body.get("methods")
        )
    return web.json_response(ser.attachment(attachment, profile.slug), status=201)


async def update_methods(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    methods = catalog.check_methods(body.get("methods"))
    async with svc.db.transaction() as tx:
        before = await tx.attachments.get(target.application.id, target.profile.id)
        assert before is not None
        merged = {**before.methods, **methods}
        updated = await tx.attachments.update_methods(before.id, merged)
        await tx.audit.add(
            event(
                actor(request),
                svc.clock.now(),
                "application.enrollment_updated",
                "attachment",
                before.id,
                project_id=target.application.project_id,
                application_id=target.application.id,
                details={"profile": target.profile.slug, "before": before.methods, "after": merged},
            )
        )
    return web.json_response(ser.attachment(updated, target.profile.slug))


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/applications",
            list_applications,
            "applications.list",
            Permission.AUTHENTICATED,
            "List the active project's applications the caller belongs to (all for admins)",
            "applications",
        ),
        Route(
            "POST",
            "/api/v1/applications",
            create_application,
            "applications.create",
            Permission.PRODUCT_ADMIN,
            "Create an application",
            "applications",
            body=models.ApplicationBody,
            responses={201: "Created"},
        ),
        Route(
            "GET",
            "/api/v1/applications/{app}",
            get_application,
            "applications.get",
            Permission.APP_READ,
            "Get an application",
            "applications",
        ),
        Route(
            "GET",
            "/api/v1/applications/{app}/profiles",
            list_attachments,
            "attachments.list",
            Permission.APP_READ,
            "List the profiles attached to an application",
            "applications",
        ),
        Route(
            "POST",
            "/api/v1/applications/{app}/profiles",
            attach_profile,
            "attachments.create",
            Permission.PRODUCT_ADMIN,
            "Attach a profile to an application",
            "applications",
            body=models.AttachBody,
            responses={201: "Created"},
        ),
        Route(
            "PATCH",
            "/api/v1/applications/{app}/profiles/{profile}",
            update_methods,
            "attachments.update",
            Permission.APP_ADMIN,
            "Change the enrollment methods of an attached profile",
            "applications",
            body=models.MethodsBody,
        ),
    ]
