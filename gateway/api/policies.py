"""Certificate policies: what a certificate may contain."""

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
from gateway.core.policy_codec import rules_from_dict, rules_to_dict
from gateway.services import catalog
from gateway.services.audit import event


async def list_policies(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        project = await project_scope(tx, request)
        items = await tx.policies.list(project.id)
    return web.json_response({"items": [ser.policy(p) for p in items]})


async def create_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    rules = rules_from_dict(body.get("rules", {}))
    svc = services(request)
    async with svc.db.transaction() as tx:
        project = await project_scope(tx, request, body)
        policy = await catalog.create_policy(
            svc, tx, actor(request), project.id, body.get("name", ""), rules
        )
    return web.json_response(ser.policy(policy), status=201)


async def get_policy(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        policy = await tx.policies.get(path_uuid(request, "policy_id"))
    if policy is None:
        raise NotFound("policy not found")
    return web.json_response(ser.policy(policy))


async def update_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    if "rules" not in body:
        raise InvalidInput("rules is required")
    rules = rules_from_dict(body["rules"])
    svc = services(request)
    async with svc.db.transaction() as tx:
        before = await tx.policies.get(path_uuid(request, "policy_id"))
        if before is None:
            raise NotFound("policy not found")
        # A rule change must not leave a profile whose defaults the policy now forbids.
        for profile in await tx.profiles.list(before.project_id):
            if profile.policy_id == before.id:
                problems = validate_profile_against_policy(profile, rules)
                if problems:
                    raise InvalidInput(
                        f"profile '{profile.slug}' would conflict with these rules: "
                        + "; ".join(problems)
                    )
        updated = dataclasses.replace(before, rules=rules)
        await tx.policies.update(updated)
        await tx.audit.add(
            event(
                actor(request),
                svc.clock.now(),
                "policy.updated",
                "policy",
                before.id,
                project_id=before.project_id,
                details={"before": rules_to_dict(before.rules), "after": rules_to_dict(rules)},
            )
        )
    return web.json_response(ser.policy(updated))


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
