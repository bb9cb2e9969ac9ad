"""Export of a legacy project into the active one: `POST /api/v1/projects/{id}/export`
(gateway.services.export does the work; `certgate project export` calls the same)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from gateway.api.common import actor, body_of, path_uuid, services
from gateway.api.models import Body
from gateway.api.outputs import Out
from gateway.api.routing import Permission, Route
from gateway.services import export


class ExportBody(Body):
    # Compute and answer the result, write nothing.
    dry_run: bool = False
    # A project exported before is exported again only when asked to.
    again: bool = False


class ExportedOut(Out):
    source_id: str
    id: str
    name: str
    renamed_from: str | None


class ExportedProfileOut(ExportedOut):
    slug: str


class SkippedOut(Out):
    kind: Annotated[str, Field(json_schema_extra={"enum": ["ca", "profile"]})]
    source_id: str
    name: str
    reason: str


class ExportedSetOut(Out):
    cas: list[ExportedOut]
    policies: list[ExportedOut]
    profiles: list[ExportedProfileOut]


class ExportOut(Out):
    source_project_id: str
    target_project_id: str
    dry_run: bool
    # When the export was committed (null for a dry run).
    exported_at: str | None
    exported: ExportedSetOut
    skipped: list[SkippedOut]


async def export_project(request: web.Request) -> web.Response:
    body = body_of(request, ExportBody)
    result = await export.export_project(
        services(request),
        actor(request),
        path_uuid(request, "project_id"),
        dry_run=body.dry_run,
        again=body.again,
    )
    return web.json_response(result.as_dict())


def routes() -> list[Route]:
    return [
        Route(
            "POST",
            "/api/v1/projects/{project_id}/export",
            export_project,
            "projects.export",
            Permission.PRODUCT_ADMIN,
            "Copy a legacy project's CAs, policies and profiles into the active project",
            "projects",
            body=ExportBody,
            body_optional=True,
            schemas={200: ExportOut},
        ),
    ]
