"""Projects of the organization: one active, the others legacy."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, body_of, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import Project
from gateway.services import catalog
from store.db import Tx


async def project_scope(
    tx: Tx, request: web.Request, body: dict[str, object] | None = None
) -> Project:
    """The project a CA/policy/profile request acts on: `project_id` or the active one."""
    raw = (body or {}).get("project_id") or request.query.get("project_id")
    if raw is None:
        return await catalog.active_project(tx)
    try:
        project_id = uuid.UUID(str(raw))
    except ValueError:
        raise InvalidInput("project_id must be a UUID") from None
    project = await tx.projects.get(project_id)
    if project is None:
        raise NotFound("project not found")
    return project


async def list_projects(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        projects = await tx.projects.list()
    return web.json_response({"items": [ser.project(p) for p in projects]})


async def create_project(request: web.Request) -> web.Response:
    body = body_of(request, models.ProjectBody)
    svc = services(request)
    async with svc.db.transaction() as tx:
        project = await catalog.create_project(
            svc, tx, actor(request), body.name, active=body.active
        )
    return web.json_response(ser.project(project), status=201)


async def activate_project(request: web.Request) -> web.Response:
    svc = services(request)
    async with svc.db.transaction() as tx:
        project = await catalog.activate_project(
            svc, tx, actor(request), path_uuid(request, "project_id")
        )
    return web.json_response(ser.project(project))


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/projects",
            list_projects,
            "projects.list",
            Permission.PRODUCT_ADMIN,
            "List the organization's projects",
            "projects",
        ),
        Route(
            "POST",
            "/api/v1/projects",
            create_project,
            "projects.create",
            Permission.PRODUCT_ADMIN,
            "Create a project (legacy unless active=true)",
            "projects",
            body=models.ProjectBody,
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/projects/{project_id}/activate",
            activate_project,
            "projects.activate",
            Permission.PRODUCT_ADMIN,
            "Make a project the active one",
            "projects",
        ),
    ]
