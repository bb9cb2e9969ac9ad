"""Certificate profiles: one CA + one policy + defaults."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.projects import project_ref
from gateway.api.routing import Permission, Route
from gateway.services import catalog


async def list_profiles(request: web.Request) -> web.Response:
    items = await catalog.list_profiles(services(request), project_ref(request))
    return web.json_response({"items": [ser.profile(p) for p in items]})


async def create_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile = await catalog.add_profile(
        services(request), actor(request), project_ref(request, body), body
    )
    return web.json_response(ser.profile(profile), status=201)


async def get_profile(request: web.Request) -> web.Response:
    profile = await catalog.get_profile(services(request), path_uuid(request, "profile_id"))
    return web.json_response(ser.profile(profile))


async def update_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile = await catalog.update_profile(
        services(request), actor(request), path_uuid(request, "profile_id"), body
    )
    return web.json_response(ser.profile(profile))


def routes() -> list[Route]:
    admin = Permission.PRODUCT_ADMIN
    return [
        Route(
            "GET",
            "/api/v1/profiles",
            list_profiles,
            "profiles.list",
            admin,
            "List profiles",
            "profiles",
            query=models.ProjectQuery,
        ),
        Route(
            "POST",
            "/api/v1/profiles",
            create_profile,
            "profiles.create",
            admin,
            "Create a profile",
            "profiles",
            body=models.ProfileBody,
            responses={201: "Created"},
        ),
        Route(
            "GET",
            "/api/v1/profiles/{profile_id}",
            get_profile,
            "profiles.get",
            admin,
            "Get a profile",
            "profiles",
        ),
        Route(
            "PATCH",
            "/api/v1/profiles/{profile_id}",
            update_profile,
            "profiles.update",
            admin,
            "Change a profile's defaults",
            "profiles",
            body=models.ProfileUpdateBody,
        ),
    ]
