"""The audit log: every state change, who did it, from where, before/after (no secrets).
Product Admins query all of it; an application's members with the Auditor role or above
query that application's events only."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import iso_datetime, page_json, pagination, services
from gateway.api.routing import Permission, Route
from gateway.core.model import AuditEvent
from gateway.services import audit as audit_log
from gateway.services.certificates import resolve_application
from store.filters import AuditFilter

FILTERS = ("actor", "action", "target_id", "since", "until", "limit", "offset")


def event_json(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "at": ser.ts(e.at),
        "actor": e.actor,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "project_id": str(e.project_id) if e.project_id else None,
        "application_id": str(e.application_id) if e.application_id else None,
        "source_ip": e.source_ip,
        "details": e.details,
    }


def _filter(request: web.Request, application_id: uuid.UUID | None) -> AuditFilter:
    q = request.query
    return AuditFilter(
        application_id=application_id,
        actor=q.get("actor") or None,
        action=q.get("action") or None,
        target_id=q.get("target_id") or None,
        since=iso_datetime(request.query.get("since"), "since"),
        until=iso_datetime(request.query.get("until"), "until"),
    )


async def _page(
    request: web.Request, application_id: uuid.UUID | None, application: str | None = None
) -> web.Response:
    limit, offset = pagination(request)
    page = await audit_log.list_events(
        services(request),
        _filter(request, application_id),
        limit,
        offset,
        application=application,
    )
    return web.json_response(
        page_json([event_json(e) for e in page.items], page.total, limit, offset)
    )


async def list_all(request: web.Request) -> web.Response:
    return await _page(request, None, request.query.get("application") or None)


async def list_for_application(request: web.Request) -> web.Response:
    app = await resolve_application(services(request), request.match_info["app"])
    return await _page(request, app.id)


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/audit",
            list_all,
            "audit.list",
            Permission.PRODUCT_ADMIN,
            "Query the audit log, newest first",
            "audit",
            query=models.AuditAllQuery,
        ),
        Route(
            "GET",
            "/api/v1/applications/{app}/audit",
            list_for_application,
            "audit.application",
            Permission.APP_READ,
            "Query one application's audit events, newest first",
            "audit",
            query=models.AuditQuery,
        ),
    ]
