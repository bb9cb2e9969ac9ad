"""REST for an application Admin: ACME on an attached profile (enable/disable, settings)
and its External Account Binding credentials (create/rotate)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api.common import actor, json_body, services
from gateway.api.routing import Permission, Route
from gateway.targets import AttachedTarget
from protocols.acme import settings as acme

_PATH = "/api/v1/applications/{app}/profiles/{profile}/acme"


def _directory(request: web.Request, app: str, profile: str) -> str:
    # The ACME routes live on the root app (protocols.acme.install), not the REST one.
    route = request.match_info.apps[0].router["acme.app.directory"]
    return services(request).config.base_url + str(route.url_for(app=app, profile=profile))


def _view(
    request: web.Request, acme_view: acme.AttachmentAcme, target: AttachedTarget
) -> dict[str, Any]:
    settings = acme_view.settings
    view = {
        "enabled": bool(settings.get("enabled", False)),
        "eab_required": bool(settings.get("eab_required", True)),
        "eab_reuse": bool(settings.get("eab_reuse", False)),
        "validation_networks": settings.get("validation_networks"),
        "challenges": settings.get("challenges"),
        "terms_of_service": settings.get("terms_of_service"),
        "directory": _directory(request, target.application.slug, target.profile.slug),
        "eab_kid": acme_view.eab_kid,
    }
    if acme_view.created is not None:  # shown once: the HMAC key is never returned again
        view["eab_hmac_key"] = acme_view.created.hmac_key
    return view


async def _target(request: web.Request) -> AttachedTarget:
    return await services(request).targets.scoped(
        request.match_info["app"], request.match_info["profile"]
    )


async def get_settings(request: web.Request) -> web.Response:
    target = await _target(request)
    return web.json_response(
        _view(request, await acme.get_settings(services(request), target), target)
    )


async def update_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    target = await _target(request)
    changed = await acme.change_settings(services(request), actor(request), target, body)
    return web.json_response(_view(request, changed, target))


async def rotate_eab(request: web.Request) -> web.Response:
    target = await _target(request)
    credentials = await acme.change_eab(services(request), actor(request), target)
    return web.json_response(
        {"eab_kid": credentials.kid, "eab_hmac_key": credentials.hmac_key}, status=201
    )


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            _PATH,
            get_settings,
            "acme_settings.get",
            Permission.APP_ADMIN,
            "ACME settings of an attached profile",
            "acme",
        ),
        Route(
            "PATCH",
            _PATH,
            update_settings,
            "acme_settings.update",
            Permission.APP_ADMIN,
            "Enable/disable ACME on an attached profile and change its settings",
            "acme",
            body=models.AcmeSettingsBody,
        ),
        Route(
            "POST",
            _PATH + "/eab",
            rotate_eab,
            "acme_settings.eab",
            Permission.APP_ADMIN,
            "Create or rotate the External Account Binding credentials",
            "acme",
            responses={201: "Created"},
        ),
    ]
