"""The certificate inventory across projects (Product Admin, DESIGN.md contract):
`GET /api/v1/certificates`."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import page_json, query_of, services
from gateway.api.routing import Permission, Route
from gateway.services import inventory
from store.filters import CertificateListStatus


def _item(item: inventory.InventoryItem) -> dict[str, Any]:
    return {
        **ser.certificate(item.certificate),
        "project_id": str(item.certificate.project_id),
        "application": item.application,
    }


async def list_inventory(request: web.Request) -> web.Response:
    query = query_of(request, models.InventoryQuery)
    status = query.status.value if query.status is not None else None
    page = await inventory.list_inventory(
        services(request),
        project_id=query.project_id,
        profile_id=query.profile_id,
        application=query.application or None,
        status=cast(CertificateListStatus | None, status),
        expiring_before=query.expiring_before,
        search=query.q or None,
        limit=query.limit,
        offset=query.offset,
    )
    return web.json_response(
        page_json([_item(i) for i in page.items], page.total, query.limit, query.offset)
    )


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/certificates",
            list_inventory,
            "certificates.inventory",
            Permission.PRODUCT_ADMIN,
            "List every certificate of every project, legacy issuance included",
            "certificates",
            query=models.InventoryQuery,
        ),
    ]
