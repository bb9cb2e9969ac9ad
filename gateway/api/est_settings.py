"""EST settings of an attached profile (application Admin) and of a legacy profile
(Product Admin), plus the EST wire routes themselves (public; protocols.est)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.targets import AttachedTarget
from protocols.est import settings as est_admin

_SETTINGS_BODY = models.EstSettingsBody


async def _target(request: web.Request) -> AttachedTarget:
    return await services(request).targets.scoped(
        request.match_info["app"], request.match_info["profile"]
    )


async def get_settings(request: web.Request) -> web.Response:
    target = await _target(request)
    return web.json_response(await est_admin.get_settings(services(request), target))


async def update_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    target = await _target(request)
    view = await est_admin.change_settings(services(request), actor(request), target, body)
    return web.json_response(view)


async def set_password(request: web.Request) -> web.Response:
    """Set or rotate the Basic passphrase; given (>= 8 characters) or generated. The
    plaintext is in this response only; the gateway keeps a hash."""
    body = await json_body(request)
    target = await _target(request)
    created = await est_admin.change_password(
        services(request), actor(request), target, body.get("password")
    )
    return web.json_response(created, status=201)


async def get_profile_settings(request: web.Request) -> web.Response:
    profile_id = path_uuid(request, "profile_id")
    return web.json_response(await est_admin.get_profile_settings(services(request), profile_id))


async def update_profile_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile_id = path_uuid(request, "profile_id")
    view = await est_admin.change_profile_settings(
        services(request), actor(request), profile_id, body
    )
    return web.json_response(view)


async def set_profile_password(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile_id = path_uuid(request, "profile_id")
    created = await est_admin.change_profile_password(
        services(request), actor(request), profile_id, body.get("password")
    )
    return web.json_response(created, status=201)


def routes() -> list[Route]:
    app_path = "/api/v1/applications/{app}/profiles/{profile}/est"
    profile_path = "/api/v1/profiles/{profile_id}/est"
    return [
        Route(
            "GET",
            app_path,
            get_settings,
            "est.settings.get",
            Permission.APP_READ,
            "EST settings of an attached profile (never the passphrase)",
            "est",
        ),
        Route(
            "PATCH",
            app_path,
            update_settings,
            "est.settings.update",
            Permission.APP_ADMIN,
            "Enable/disable EST and set its authentication (only the given fields change)",
            "est",
            body=_SETTINGS_BODY,
        ),
        Route(
            "POST",
            app_path + "/password",
            set_password,
            "est.password.set",
            Permission.APP_ADMIN,
            "Set or rotate the EST Basic passphrase (returned once)",
            "est",
            body=models.PasswordBody,
            responses={201: "Created"},
        ),
        Route(
            "GET",
            profile_path,
            get_profile_settings,
            "est.profile_settings.get",
            Permission.PRODUCT_ADMIN,
            "EST settings of a legacy (profile-scoped) enrollment",
            "est",
        ),
        Route(
            "PATCH",
            profile_path,
            update_profile_settings,
            "est.profile_settings.update",
            Permission.PRODUCT_ADMIN,
            "Change the EST settings of a legacy (profile-scoped) enrollment",
            "est",
            body=_SETTINGS_BODY,
        ),
        Route(
            "POST",
            profile_path + "/password",
            set_profile_password,
            "est.profile_password.set",
            Permission.PRODUCT_ADMIN,
            "Set or rotate the legacy EST Basic passphrase (returned once)",
            "est",
            body=models.PasswordBody,
            responses={201: "Created"},
        ),
    ]
