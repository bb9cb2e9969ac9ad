"""Certificate policies: what a certificate may contain."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.projects import project_ref
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput
from gateway.core.policy_codec import rules_from_dict
from gateway.services import catalog


async def list_policies(request: web.Request) -> web.Response:
    items = await catalog.list_policies(services(request), project_ref(request))
    return web.json_response({"items": [ser.policy(p) for p in items]})


async def create_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    rules = rules_from_dict(body.get("rules", {}))
    policy = await catalog.add_policy(
        services(request), actor(request), project_ref(request, body), body.get("name", ""), rules
    )
    return web.json_response(ser.policy(policy), status=201)


async def get_policy(request: web.Request) -> web.Response:
    policy = await catalog.get_policy(services(request), path_uuid(request, "policy_id"))
    return web.json_response(ser.policy(policy))


async def update_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    if "rules" not in body:
        raise InvalidInput("rules is required")
    rules = rules_from_dict(body["rules"])
    policy = await catalog.update_policy(
        services(request), actor(request), path_uuid(request, "policy_id"), rules
    )
    return web.json_response(ser.policy(policy))


def routes() -> list[Route]:
    admin = Permission.PRODUCT_ADMIN
    return [
        Route(
            "GET",
            "/api/v1/policies",
            list_policies,
            "policies.list",
            admin,
            "List policies",
            "policies",
            query=models.ProjectQuery,
        ),
        Route(
            "POST",
            "/api/v1/policies",
            create_policy,
            "policies.create",
            admin,
            "Create a policy",
            "policies",
            body=models.PolicyBody,
            responses={201: "Created"},
        ),
        Route(
            "GET",
            "/api/v1/policies/{policy_id}",
            get_policy,
            "policies.get",
            admin,
            "Get a policy",
            "policies",
        ),
        Route(
            "PUT",
            "/api/v1/policies/{policy_id}",
            update_policy,
            "policies.update",
            admin,
            "Replace a policy's rules",
            "policies",
            body=models.PolicyUpdateBody,
        ),
    ]
