"""Projects of the organization: one active, the others legacy."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, body_of, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.services import catalog


def project_ref(request: web.Request, body: dict[str, object] | None = None) -> object | None:
    """The project a CA/policy/profile request names: `project_id` in the body or the query
    (None: the active one; gateway.services.catalog.project_scope resolves it)."""
    return (body or {}).get("project_id") or request.query.get("project_id")


async def list_projects(request: web.Request) -> web.Response:
    projects = await catalog.list_projects(services(request))
    return web.json_response({"items": [ser.project(p) for p in projects]})


async def create_project(request: web.Request) -> web.Response:
    body = body_of(request, models.ProjectBody)
    project = await catalog.add_project(
        services(request), actor(request), body.name, active=body.active
    )
    return web.json_response(ser.project(project), status=201)


async def activate_project(request: web.Request) -> web.Response:
    project = await catalog.activate_project(
        services(request), actor(request), path_uuid(request, "project_id")
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
