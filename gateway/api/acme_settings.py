"""REST for an application Admin: ACME on an attached profile (enable/disable, settings)
and its External Account Binding credentials (create/rotate)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api.common import actor, json_body, services
from gateway.api.routing import Permission, Route
from gateway.services.certificates import resolve
from protocols.acme import settings as acme

_PATH = "/api/v1/applications/{app}/profiles/{profile}/acme"


def _directory(request: web.Request, app: str, profile: str) -> str:
    # The ACME routes live on the root app (protocols.acme.install), not the REST one.
    route = request.match_info.apps[0].router["acme.app.directory"]
    return services(request).config.base_url + str(route.url_for(app=app, profile=profile))


def _view(
    request: web.Request, settings: dict[str, Any], kid: str | None, app: str, profile: str
) -> dict[str, Any]:
    return {
        "enabled": bool(settings.get("enabled", False)),
        "eab_required": bool(settings.get("eab_required", True)),
        "validation_networks": settings.get("validation_networks"),
        "challenges": settings.get("challenges"),
        "terms_of_service": settings.get("terms_of_service"),
        "directory": _directory(request, app, profile),
        "eab_kid": kid,
    }


async def get_settings(request: web.Request) -> web.Response:
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    async with svc.db.transaction(read_only=True) as tx:
        attachment = await tx.attachments.get(target.application.id, target.profile.id)
        assert attachment is not None
        kid = await acme.current_eab_kid(svc, tx, acme.attachment_scope(attachment))
    settings = attachment.methods.get(acme.ACME, {})
    return web.json_response(
        _view(request, settings, kid, target.application.slug, target.profile.slug)
    )


async def update_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    async with svc.db.transaction() as tx:
        attachment, created = await acme.configure_attachment(
            svc, tx, actor(request), target.application, target.profile, body
        )
        kid = await acme.current_eab_kid(svc, tx, acme.attachment_scope(attachment))
    view = _view(
        request,
        attachment.methods.get(acme.ACME, {}),
        kid,
        target.application.slug,
        target.profile.slug,
    )
    if created is not None:  # shown once: the HMAC key is never returned again
        view["eab_hmac_key"] = created.hmac_key
    return web.json_response(view)


async def rotate_eab(request: web.Request) -> web.Response:
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    async with svc.db.transaction() as tx:
        attachment = await tx.attachments.get(target.application.id, target.profile.id)
        assert attachment is not None
        credentials = await acme.rotate_eab(
            svc,
            tx,
            actor(request),
            acme.attachment_scope(attachment),
            target.application.project_id,
            target.application.id,
        )
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
