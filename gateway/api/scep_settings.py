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
from gateway.core.errors import InvalidInput
from gateway.services.certificates import resolve
from gateway.services.graph import Services
from gateway.targets import EnrollmentTarget
from protocols.scep import settings as scep_admin
from store.db import Tx

Change = Callable[[Services, Tx, EnrollmentTarget, web.Request, dict[str, Any]], Awaitable[Any]]


async def _enrollment(request: web.Request, tx: Tx) -> EnrollmentTarget:
    if "profile_id" in request.match_info:
        return await scep_admin.for_profile(tx, path_uuid(request, "profile_id"))
    target = await resolve(
        services(request), request.match_info["app"], request.match_info["profile"]
    )
    return await scep_admin.for_target(tx, target.application, target.profile)


async def get_settings(request: web.Request) -> web.Response:
    svc = services(request)
    async with svc.db.transaction(read_only=True) as tx:
        enrollment = await _enrollment(request, tx)
        return web.json_response(await scep_admin.view(svc, tx, enrollment))


def _writer(
    change: Change, status: int = 200, body: bool = True
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        # A body the route's model validated is read already (can_read_body is then
        # false): json_body hands over the validated one.
        readable = body or request.can_read_body or request.get(BODY_JSON) is not None
        data = await json_body(request) if readable else {}
        svc = services(request)
        async with svc.db.transaction() as tx:
            enrollment = await _enrollment(request, tx)
            result = await change(svc, tx, enrollment, request, data)
        return web.json_response(result, status=status)

    return handler


async def _update(
    svc: Services, tx: Tx, e: EnrollmentTarget, r: web.Request, b: dict[str, Any]
) -> Any:
    return await scep_admin.update(svc, tx, actor(r), e, b)


async def _challenge(
    svc: Services, tx: Tx, e: EnrollmentTarget, r: web.Request, b: dict[str, Any]
) -> Any:
    return await scep_admin.set_static_challenge(svc, tx, actor(r), e, b.get("challenge"))


async def _rotate(
    svc: Services, tx: Tx, e: EnrollmentTarget, r: web.Request, b: dict[str, Any]
) -> Any:
    unknown = set(b) - {"keep_previous"}
    keep = b.get("keep_previous", True)
    if unknown or not isinstance(keep, bool):
        raise InvalidInput("the body may only hold keep_previous (a boolean, default true)")
    # keep_previous=false: the old RA stops answering at once (a compromised key).
    return await scep_admin.rotate_ra(svc, tx, actor(r), e, keep_previous=keep)


async def _dynamic(
    svc: Services, tx: Tx, e: EnrollmentTarget, r: web.Request, b: dict[str, Any]
) -> Any:
    return await scep_admin.create_challenge(svc, tx, actor(r), e, b)


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
                _writer(_update),
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
                _writer(_rotate, 201, body=False),
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
                _writer(_dynamic, 201),
                f"{prefix}.challenges.create",
                issue,
                f"A dynamic one-time challenge{where} (ttl_minutes, default 60)",
                "scep",
                body=models.DynamicChallengeBody,
                responses={201: "Created"},
            ),
        ]
    return out
