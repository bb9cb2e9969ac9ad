"""Certificate authorities: create root/intermediate, register an external CA, import,
list, get, disable/enable."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, body_of, path_uuid, services
from gateway.api.projects import project_ref
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput
from gateway.core.model import CAStatus
from gateway.services import cas as ca_admin


async def list_cas(request: web.Request) -> web.Response:
    items = await ca_admin.list_cas(services(request), project_ref(request))
    return web.json_response({"items": [ser.ca(c) for c in items]})


async def create_ca(request: web.Request) -> web.Response:
    body = body_of(request, models.CreateCABody)
    svc = services(request)
    project = project_ref(request, {"project_id": body.project_id})
    if body.kind is models.CAKindName.EXTERNAL:
        if body.certificate_pem is None:
            raise InvalidInput("an external CA needs certificate_pem (its CA certificate)")
        given = [
            f
            for f in ("parent_id", "key_type", "common_name", "validity_days")
            if getattr(body, f) is not None
        ]
        if given:
            # Its key, name and validity are in its certificate: nothing here makes them.
            raise InvalidInput(f"an external CA takes no {', '.join(given)}")
        ca = await ca_admin.add_external(
            svc,
            actor(request),
            name=body.name,
            certificate_pem=body.certificate_pem,
            chain_pem=body.chain_pem,
            project_ref=project,
            exportable=body.exportable,
        )
        return web.json_response(ser.ca(ca), status=201)
    if body.certificate_pem is not None or body.chain_pem is not None:
        raise InvalidInput(
            "certificate_pem is for kind 'external'; an existing CA with its key is "
            "imported with POST /api/v1/cas/import"
        )
    if body.kind is models.CAKindName.INTERMEDIATE and body.parent_id is None:
        raise InvalidInput("parent_id (UUID of the issuing CA) is required")
    ca = await ca_admin.add_ca(
        svc,
        actor(request),
        kind=body.kind.value,
        name=body.name,
        project_ref=project,
        parent_id=body.parent_id,
        common_name=body.common_name,
        key_type=body.key_type or ca_admin.parse_key_type(svc.config.pki.key_type),
        validity_days=body.validity_days,
        exportable=body.exportable,
    )
    return web.json_response(ser.ca(ca), status=201)


async def import_ca(request: web.Request) -> web.Response:
    body = body_of(request, models.ImportCABody)
    ca = await ca_admin.import_ca(
        services(request),
        actor(request),
        project_ref=project_ref(request, {"project_id": body.project_id}),
        name=body.name,
        certificate_pem=body.certificate_pem,
        private_key_pem=body.private_key_pem,
        passphrase=body.passphrase,
        chain_pem=body.chain_pem,
        exportable=body.exportable,
    )
    return web.json_response(ser.ca(ca), status=201)


async def get_ca(request: web.Request) -> web.Response:
    ca = await ca_admin.get_ca(services(request), path_uuid(request, "ca_id"))
    return web.json_response(ser.ca(ca))


async def _set_status(request: web.Request, status: CAStatus) -> web.Response:
    ca = await ca_admin.set_status(
        services(request), actor(request), path_uuid(request, "ca_id"), status
    )
    return web.json_response(ser.ca(ca))


async def disable_ca(request: web.Request) -> web.Response:
    return await _set_status(request, CAStatus.DISABLED)


async def enable_ca(request: web.Request) -> web.Response:
    return await _set_status(request, CAStatus.ACTIVE)


def routes() -> list[Route]:
    admin = Permission.PRODUCT_ADMIN
    return [
        Route(
            "GET",
            "/api/v1/cas",
            list_cas,
            "cas.list",
            admin,
            "List CAs of a project",
            "cas",
            query=models.ProjectQuery,
        ),
        Route(
            "POST",
            "/api/v1/cas",
            create_ca,
            "cas.create",
            admin,
            "Create an internal root or intermediate CA, or register an external one",
            "cas",
            body=models.CreateCABody,
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/cas/import",
            import_ca,
            "cas.import_ca",
            admin,
            "Import an existing CA certificate and key",
            "cas",
            body=models.ImportCABody,
            responses={201: "Created"},
        ),
        Route("GET", "/api/v1/cas/{ca_id}", get_ca, "cas.get", admin, "Get a CA", "cas"),
        Route(
            "POST",
            "/api/v1/cas/{ca_id}/disable",
            disable_ca,
            "cas.disable",
            admin,
            "Disable a CA (nothing more is issued under it)",
            "cas",
        ),
        Route(
            "POST",
            "/api/v1/cas/{ca_id}/enable",
            enable_ca,
            "cas.enable",
            admin,
            "Enable a disabled CA",
            "cas",
        ),
    ]
