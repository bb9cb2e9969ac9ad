"""Applications (active project only) and their attached profiles."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import PRINCIPAL, actor, json_body, services
from gateway.api.routing import Permission, Route
from gateway.services import applications
from gateway.services.certificates import resolve_application


async def list_applications(request: web.Request) -> web.Response:
    """Every application for a Product Admin; for anyone else only those they are a member
    of, and none at all without the Product Member role (it is needed to reach any)."""
    items = await applications.list_applications(services(request), request[PRINCIPAL].principal)
    return web.json_response(
        {
            "items": [
                {**ser.application(a), "role": role.value if role is not None else None}
                for a, role in items
            ]
        }
    )


async def create_application(request: web.Request) -> web.Response:
    body = await json_body(request)
    app = await applications.add_application(
        services(request),
        actor(request),
        body.get("slug", ""),
        body.get("name"),
        body.get("description", ""),
    )
    return web.json_response(ser.application(app), status=201)


async def get_application(request: web.Request) -> web.Response:
    app = await resolve_application(services(request), request.match_info["app"])
    return web.json_response(ser.application(app))


async def list_attachments(request: web.Request) -> web.Response:
    items = await applications.list_attachments(services(request), request.match_info["app"])
    return web.json_response({"items": [ser.attachment(a, slug) for a, slug in items]})


async def attach_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    attachment, profile = await applications.add_attachment(
        services(request),
        actor(request),
        request.match_info["app"],
        str(body.get("profile", "")),
        body.get("methods"),
    )
    return web.json_response(ser.attachment(attachment, profile.slug), status=201)


async def update_methods(request: web.Request) -> web.Response:
    body = await json_body(request)
    attachment, profile = await applications.update_methods(
        services(request),
        actor(request),
        request.match_info["app"],
        request.match_info["profile"],
        body.get("methods"),
    )
    return web.json_response(ser.attachment(attachment, profile.slug))


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
