"""SCEP settings of an attached profile (application Admin; dynamic challenges: Operator or
machine identity) and of a legacy profile (Product Admin), plus the SCEP wire routes
themselves (public; protocols.scep)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api.common import BODY_JSON, actor, json_body, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.services.audit import Actor
from gateway.services.graph import Services
from protocols.scep import settings as scep_admin

Change = Callable[[Services, Actor, scep_admin.Where, dict[str, Any]], Awaitable[Any]]


async def _where(request: web.Request) -> scep_admin.Where:
    if "profile_id" in request.match_info:
        return path_uuid(request, "profile_id")
    return await services(request).targets.scoped(
        request.match_info["app"], request.match_info["profile"]
    )


async def get_settings(request: web.Request) -> web.Response:
    where = await _where(request)
    return web.json_response(await scep_admin.get_settings(services(request), where))


def _writer(
    change: Change, status: int = 200, body: bool = True
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        # A body the route's model validated is read already (can_read_body is then
        # false): json_body hands over the validated one.
        readable = body or request.can_read_body or request.get(BODY_JSON) is not None
        data = await json_body(request) if readable else {}
        where = await _where(request)
        result = await change(services(request), actor(request), where, data)
        return web.json_response(result, status=status)

    return handler


async def _challenge(
    svc: Services, who: Actor, where: scep_admin.Where, b: dict[str, Any]
) -> dict[str, str]:
    return await scep_admin.change_static_challenge(svc, who, where, b.get("challenge"))


def routes() -> list[Route]:
    app_path = "/api/v1/applications/{app}/profiles/{profile}/scep"
    profile_path = "/api/v1/profiles/{profile_id}/scep"
    out: list[Route] = []
    for path, prefix, read, admin, issue, where in (
        (app_path, "scep", Permission.APP_READ, Permission.APP_ADMIN, Permission.APP_ISSUE, ""),
        (
            profile_path,
            "scep.profile",
            Permission.PRODUCT_ADMIN,
            Permission.PRODUCT_ADMIN,
            Permission.PRODUCT_ADMIN,
            " of a legacy (profile-scoped) enrollment",
        ),
    ):
        out += [
            Route(
                "GET",
                path,
                get_settings,
                f"{prefix}.settings.get",
                read,
                f"SCEP settings{where} (never a challenge)",
                "scep",
            ),
            Route(
                "PATCH",
                path,
                _writer(scep_admin.change_settings),
                f"{prefix}.settings.update",
                admin,
                f"Enable/disable SCEP{where}; enabling creates the RA",
                "scep",
                body=models.ScepSettingsBody,
            ),
            Route(
                "POST",
                path + "/challenge",
                _writer(_challenge, 201),
                f"{prefix}.challenge.set",
                admin,
                f"Set or generate the static challenge{where} (returned once)",
                "scep",
                body=models.ChallengeBody,
                responses={201: "Created"},
            ),
            Route(
                "POST",
                path + "/ra/rotate",
                _writer(scep_admin.rotate, 201, body=False),
                f"{prefix}.ra.rotate",
                admin,
                f"Issue a new RA key and certificate{where}; the previous one answers for "
                "24 h unless keep_previous is false",
                "scep",
                body=models.RotateBody,
                body_optional=True,
                responses={201: "Created"},
            ),
            Route(
                "POST",
                path + "/challenges",
                _writer(scep_admin.new_challenge, 201),
                f"{prefix}.challenges.create",
                issue,
                f"A dynamic one-time challenge{where} (ttl_minutes, default 60)",
                "scep",
                body=models.DynamicChallengeBody,
                responses={201: "Created"},
            ),
        ]
    return out
