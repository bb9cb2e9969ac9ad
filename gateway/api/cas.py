"""Certificate authorities: create root/intermediate, import, list, get, disable/enable."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.projects import project_ref
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput
from gateway.core.model import CAStatus
from gateway.services import cas as ca_admin


def _int(body: dict[str, object], name: str) -> int | None:
    """An integer the body may give (None when it does not)."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer")
    return value


async def list_cas(request: web.Request) -> web.Response:
    items = await ca_admin.list_cas(services(request), project_ref(request))
    return web.json_response({"items": [ser.ca(c) for c in items]})


async def create_ca(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    kind = body.get("kind", "root")
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidInput("name is required")
    common_name = body.get("common_name")
    if common_name is not None and not isinstance(common_name, str):
        raise InvalidInput("common_name must be a string")
    key_type = ca_admin.parse_key_type(str(body.get("key_type", svc.config.pki.key_type)))
    parent_id = None
    if kind == "intermediate":
        try:
            parent_id = uuid.UUID(str(body.get("parent_id")))
        except ValueError:
            raise InvalidInput("parent_id (UUID of the issuing CA) is required") from None
    ca = await ca_admin.add_ca(
        svc,
        actor(request),
        kind=str(kind),
        name=name,
        project_ref=project_ref(request, body),
        parent_id=parent_id,
        common_name=common_name,
        key_type=key_type,
        validity_days=_int(body, "validity_days"),
    )
    return web.json_response(ser.ca(ca), status=201)


async def import_ca(request: web.Request) -> web.Response:
    body = await json_body(request)
    for name in ("name", "certificate_pem", "private_key_pem"):
        if not isinstance(body.get(name), str):
            raise InvalidInput(f"{name} is required")
    ca = await ca_admin.import_ca(
        services(request),
        actor(request),
        project_ref=project_ref(request, body),
        name=body["name"],
        certificate_pem=body["certificate_pem"],
        private_key_pem=body["private_key_pem"],
        passphrase=body.get("passphrase"),
        chain_pem=body.get("chain_pem"),
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
            "Create an internal root or intermediate CA",
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
