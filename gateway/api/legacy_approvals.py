"""A legacy project's approval policies and the legacy requests they hold (issue 12, item
5): `/api/v1/projects/{project_id}/approval-policies[/{policy_id}]` and
`/api/v1/projects/{project_id}/requests[/{request_id}[/approve|/reject]]`.

Product Admin only: a legacy project belongs to no application, so no application role
can reach it. Deciding still needs being named in the request's current step (the core's
rule), as for an application's requests."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api.approvals import request_json, rules_json
from gateway.api.common import (
    PRINCIPAL,
    actor,
    json_body,
    page_json,
    path_uuid,
    query_of,
    services,
)
from gateway.api.routing import Handler, Permission, Route
from gateway.core.approval import Decision
from gateway.core.model import ApprovalPolicy
from gateway.services import approvals as appr
from gateway.services import legacy_approvals as legacy


def policy_json(policy: ApprovalPolicy, profile_slug: str) -> dict[str, Any]:
    return {
        "id": str(policy.id),
        "project_id": str(policy.project_id) if policy.project_id else None,
        "profile_id": str(policy.profile_id),
        "profile": profile_slug,
        **rules_json(policy),
    }


def _project_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "project_id")


async def list_policies(request: web.Request) -> web.Response:
    items = await legacy.list_policies(services(request), _project_id(request))
    return web.json_response({"items": [policy_json(p, slug) for p, slug in items]})


async def create_policy(request: web.Request) -> web.Response:
    await legacy.refuse_create(services(request), _project_id(request))


async def get_policy(request: web.Request) -> web.Response:
    policy, slug = await legacy.get_policy(
        services(request), _project_id(request), path_uuid(request, "policy_id")
    )
    return web.json_response(policy_json(policy, slug))


async def put_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    policy, slug = await legacy.update_policy(
        services(request),
        actor(request),
        _project_id(request),
        path_uuid(request, "policy_id"),
        body,
    )
    return web.json_response(policy_json(policy, slug))


async def delete_policy(request: web.Request) -> web.Response:
    cancelled = await legacy.delete_policy(
        services(request), actor(request), _project_id(request), path_uuid(request, "policy_id")
    )
    return web.json_response({"deleted": True, "cancelled_requests": cancelled})


async def list_requests(request: web.Request) -> web.Response:
    query = query_of(request, models.RequestQuery)
    state = appr.parse_state(query.state)
    page = await legacy.list_requests(
        services(request), _project_id(request), state, query.limit, query.offset
    )
    return web.json_response(
        page_json([request_json(r) for r in page.items], page.total, query.limit, query.offset)
    )


async def get_request(request: web.Request) -> web.Response:
    found, certificate = await legacy.get_request(
        services(request), _project_id(request), path_uuid(request, "request_id")
    )
    return web.json_response(
        request_json(found, certificate), headers={"Cache-Control": "no-store"}
    )


def _decide(decision: Decision) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        # approve may come without a body (curl -X POST); reject needs a comment.
        if decision is Decision.REJECT or request.body_exists:
            body = await json_body(request)
        else:
            body = {}
        comment = appr.decision_comment(body, decision)
        who = appr.Decider(request[PRINCIPAL].principal.id, actor(request))
        decided = await legacy.decide(
            services(request),
            _project_id(request),
            path_uuid(request, "request_id"),
            decision,
            who,
            comment,
        )
        return web.json_response(request_json(decided))

    return handler


def routes() -> list[Route]:
    policies = "/api/v1/projects/{project_id}/approval-policies"
    one_policy = policies + "/{policy_id}"
    requests = "/api/v1/projects/{project_id}/requests"
    one = requests + "/{request_id}"
    admin = Permission.PRODUCT_ADMIN
    tag = "approvals"
    return [
        Route(
            "GET",
            policies,
            list_policies,
            "legacy_approval_policies.list",
            admin,
            "List a legacy project's approval policies (they gate its legacy endpoints)",
            tag,
        ),
        Route(
            "POST",
            policies,
            create_policy,
            "legacy_approval_policies.create",
            admin,
            "Refused (409 legacy_read_only): create approval policies inside an Application",
            tag,
            body=models.Empty,
            body_optional=True,
            responses={},
        ),
        Route(
            "GET",
            one_policy,
            get_policy,
            "legacy_approval_policies.get",
            admin,
            "Get a legacy approval policy",
            tag,
        ),
        Route(
            "PUT",
            one_policy,
            put_policy,
            "legacy_approval_policies.put",
            admin,
            "Replace a legacy approval policy's steps, bypass and request TTL",
            tag,
            body=models.ApprovalPolicyBody,
        ),
        Route(
            "DELETE",
            one_policy,
            delete_policy,
            "legacy_approval_policies.delete",
            admin,
            "Remove a legacy approval policy (its open requests are cancelled)",
            tag,
        ),
        Route(
            "GET",
            requests,
            list_requests,
            "legacy_requests.list",
            admin,
            "List the requests a legacy project's approval policies hold",
            tag,
            query=models.RequestQuery,
        ),
        Route(
            "GET",
            one,
            get_request,
            "legacy_requests.get",
            admin,
            "Get a legacy request; once issued it carries the certificate and chain",
            tag,
        ),
        Route(
            "POST",
            one + "/approve",
            _decide(Decision.APPROVE),
            "legacy_requests.approve",
            admin,
            "Approve the current step of a legacy request (approvers named in it only)",
            tag,
            body=models.CommentBody,
            body_optional=True,
        ),
        Route(
            "POST",
            one + "/reject",
            _decide(Decision.REJECT),
            "legacy_requests.reject",
            admin,
            "Reject a legacy request, saying why (approvers of the current step only)",
            tag,
            body=models.CommentBody,
        ),
    ]
