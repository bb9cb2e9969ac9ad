"""Members of an application: who has which role (Admin, Operator, Auditor) in it."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import PRINCIPAL, actor, body_of, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.core.model import Application, Member, Principal, ProductRole
from gateway.services import members as admin
from gateway.services.certificates import resolve_application


def member_json(app: Application, member: Member, principal: Principal | None) -> dict[str, Any]:
    return {
        "application": app.slug,
        "application_id": str(app.id),
        "principal_id": str(member.principal_id),
        "principal": principal.name if principal else None,
        "kind": principal.kind.value if principal else None,
        "product_role": principal.product_role.value
        if principal and principal.product_role
        else None,
        "role": member.role.value,
        "created_at": ser.ts(member.created_at),
    }


async def list_members(request: web.Request) -> web.Response:
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    members = await admin.list_members(svc, app)
    return web.json_response({"items": [member_json(app, m, p) for m, p in members]})


async def add_member(request: web.Request) -> web.Response:
    body = body_of(request, models.MemberBody)
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    caller = request[PRINCIPAL].principal
    member, principal = await admin.add_member(
        svc,
        actor(request),
        app,
        body.principal,
        body.role,
        product_admin=caller.product_role is ProductRole.ADMIN,
    )
    return web.json_response(member_json(app, member, principal), status=201)


async def change_role(request: web.Request) -> web.Response:
    role = body_of(request, models.RoleBody).role
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    principal_id: uuid.UUID = path_uuid(request, "principal_id")
    member, principal = await admin.change_role(svc, actor(request), app, principal_id, role)
    return web.json_response(member_json(app, member, principal))


async def remove_member(request: web.Request) -> web.Response:
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    await admin.remove_member(svc, actor(request), app, path_uuid(request, "principal_id"))
    return web.Response(status=204)


def routes() -> list[Route]:
    base = "/api/v1/applications/{app}/members"
    return [
        # Auditors may read who has access: the audit log they can read names the same
        # principals anyway, and reviewing access is what an auditor is for.
        Route(
            "GET",
            base,
            list_members,
            "members.list",
            Permission.APP_READ,
            "List an application's members and their roles",
            "members",
        ),
        Route(
            "POST",
            base,
            add_member,
            "members.add",
            Permission.APP_ADMIN,
            "Give a principal (id or name) a role in the application",
            "members",
            body=models.MemberBody,
            responses={201: "Added"},
        ),
        Route(
            "PATCH",
            base + "/{principal_id}",
            change_role,
            "members.update",
            Permission.APP_ADMIN,
            "Change a member's role",
            "members",
            body=models.RoleBody,
        ),
        Route(
            "DELETE",
            base + "/{principal_id}",
            remove_member,
            "members.remove",
            Permission.APP_ADMIN,
            "Remove a member from the application",
            "members",
            responses={204: "Removed"},
        ),
    ]
