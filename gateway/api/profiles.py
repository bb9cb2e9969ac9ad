"""Certificate profiles: one CA + one policy + defaults."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.projects import project_scope
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.policy import validate_profile_against_policy
from gateway.services import catalog
from gateway.services.audit import event


async def list_profiles(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        project = await project_scope(tx, request)
        items = await tx.profiles.list(project.id)
    return web.json_response({"items": [ser.profile(p) for p in items]})


async def create_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    async with svc.db.transaction() as tx:
        project = await project_scope(tx, request, body)
        profile = await catalog.create_profile(svc, tx, actor(request), project.id, body)
    return web.json_response(ser.profile(profile), status=201)


async def get_profile(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        profile = await tx.profiles.get(path_uuid(request, "profile_id"))
    if profile is None:
        raise NotFound("profile not found")
    return web.json_response(ser.profile(profile))


async def update_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    if "slug" in body or "ca_id" in body or "policy_id" in body:
        raise InvalidInput("slug, ca_id and policy_id cannot be changed; create a new profile")
    svc = services(request)
    async with svc.db.transaction() as tx:
        before = await tx.profiles.get(path_uuid(request, "profile_id"))
        if before is None:
            raise NotFound("profile not found")
        updated = dataclasses.replace(before, **catalog.profile_fields(body, before))
        policy = await tx.policies.get(before.policy_id)
        if policy is not None:
            problems = validate_profile_against_policy(updated, policy.rules)
            if problems:
                raise InvalidInput("profile conflicts with its policy: " + "; ".join(problems))
        await tx.profiles.update(updated)
        await tx.audit.add(
            event(
                actor(request),
                svc.clock.now(),
                "profile.updated",
                "profile",
                before.id,
                project_id=before.project_id,
                details={
                    "before": _summary(ser.profile(before)),
                    "after": _summary(ser.profile(updated)),
                },
            )
        )
    return web.json_response(ser.profile(updated))


def _summary(data: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in data.items() if k not in ("created_at", "project_id", "id")}


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
