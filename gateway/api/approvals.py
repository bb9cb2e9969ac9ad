"""Approval policies of attached profiles, and the certificate requests they hold back
(issue 3, "Approval policies"). Route permissions say who may reach a route; whether a
principal may decide on a request (named in its current step, not its requester) is the
enrollment core's rule."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import (
    PRINCIPAL,
    actor,
    json_body,
    page_json,
    pagination,
    path_uuid,
    services,
)
from gateway.api.routing import Handler, Permission, Route
from gateway.core import csr as csr_lib
from gateway.core.approval import Decision
from gateway.core.errors import BadCSR
from gateway.core.model import ApprovalPolicy, Certificate, CertificateRequest, ProductRole
from gateway.services import approvals as appr
from gateway.services.certificates import resolve, resolve_application


def rules_json(policy: ApprovalPolicy) -> dict[str, Any]:
    """The rules of a policy, an application's or a legacy project's alike."""
    return {
        "steps": [
            {"approvers": [str(a) for a in step.approvers], "required": step.required}
            for step in policy.steps
        ],
        "bypass": [str(b) for b in policy.bypass],
        "request_ttl_hours": policy.request_ttl_seconds // 3600,
        "created_at": ser.ts(policy.created_at),
    }


def policy_json(policy: ApprovalPolicy, app_slug: str, profile_slug: str) -> dict[str, Any]:
    return {
        "id": str(policy.id),
        "application": app_slug,
        "profile": profile_slug,
        **rules_json(policy),
    }


def _csr_summary(csr_pem: str) -> dict[str, Any]:
    """What an approver needs to see of the CSR without decoding it themselves."""
    try:
        csr = csr_lib.parse_csr(csr_pem)
    except BadCSR:
        return {"subject": None, "sans": []}
    return {
        "subject": csr.subject.rfc4514_string(),
        "sans": list(csr_lib.san_strings(csr_lib.csr_sans(csr))),
    }


def request_json(
    request: CertificateRequest, certificate: Certificate | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(request.id),
        # None: a legacy request (gateway.services.legacy_approvals).
        "application_id": str(request.application_id) if request.application_id else None,
        "profile_id": str(request.profile_id),
        "state": request.state.value,
        "step": request.step,
        "requester": request.requester,
        "requester_id": str(request.requester_id) if request.requester_id else None,
        "method": request.method.value,
        **_csr_summary(request.csr_pem),
        "csr_pem": request.csr_pem,
        "requested_validity_days": request.requested_validity_days,
        "renewed_from": str(request.renewed_from) if request.renewed_from else None,
        "approvals": [
            {
                "step": a.step,
                "principal_id": str(a.principal_id),
                "decision": a.decision,
                "comment": a.comment,
                "at": ser.ts(a.at),
            }
            for a in request.approvals
        ],
        "comment": request.comment,
        "certificate_id": str(request.certificate_id) if request.certificate_id else None,
        "created_at": ser.ts(request.created_at),
        "expires_at": ser.ts(request.expires_at),
        "updated_at": ser.ts(request.updated_at),
    }
    if certificate is not None:
        # The requester fetches the certificate here once issued (issue 3).
        body["serial"] = certificate.serial
        body["certificate_pem"] = certificate.certificate_pem
        body["chain_pem"] = certificate.chain_pem
    return body


async def _optional_body(request: web.Request) -> dict[str, Any]:
    """cancel/approve may come without a body (curl -X POST); an empty body means {}."""
    if not request.body_exists:
        return {}
    return await json_body(request)


def _decider(request: web.Request) -> appr.Decider:
    return appr.Decider(request[PRINCIPAL].principal.id, actor(request))


# --- policies ------------------------------------------------------------------------------


async def get_policy(request: web.Request) -> web.Response:
    target = await resolve(
        services(request), request.match_info["app"], request.match_info["profile"]
    )
    policy = await appr.get_policy(services(request), target)
    return web.json_response(policy_json(policy, target.application.slug, target.profile.slug))


async def put_policy(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    caller = request[PRINCIPAL].principal
    policy, created = await appr.put_policy(
        svc, target, actor(request), body, product_admin=caller.product_role is ProductRole.ADMIN
    )
    return web.json_response(
        policy_json(policy, target.application.slug, target.profile.slug),
        status=201 if created else 200,
    )


async def delete_policy(request: web.Request) -> web.Response:
    svc = services(request)
    target = await resolve(svc, request.match_info["app"], request.match_info["profile"])
    cancelled = await appr.delete_policy(svc, target, actor(request))
    return web.json_response({"deleted": True, "cancelled_requests": cancelled})


# --- requests ------------------------------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    limit, offset = pagination(request)
    state = appr.parse_state(request.query.get("state"))
    page = await appr.list_requests(svc, app, state, limit, offset)
    return web.json_response(
        page_json([request_json(r) for r in page.items], page.total, limit, offset)
    )


async def get_request(request: web.Request) -> web.Response:
    svc = services(request)
    app = await resolve_application(svc, request.match_info["app"])
    found, certificate = await appr.get_request(svc, app, path_uuid(request, "request_id"))
    return web.json_response(
        request_json(found, certificate), headers={"Cache-Control": "no-store"}
    )


def _decide(decision: Decision) -> Handler:
    """One handler for approve, reject and cancel (the decision is the route's)."""

    async def handler(request: web.Request) -> web.Response:
        # approve and cancel may come without a body (curl -X POST); reject needs a comment.
        reader = json_body if decision is Decision.REJECT else _optional_body
        body = await reader(request)
        comment = appr.decision_comment(body, decision)
        svc = services(request)
        app = await resolve_application(svc, request.match_info["app"])
        decided = await appr.decide(
            svc, app, path_uuid(request, "request_id"), decision, _decider(request), comment
        )
        return web.json_response(request_json(decided))

    return handler


def routes() -> list[Route]:
    policy_path = "/api/v1/applications/{app}/profiles/{profile}/approval-policy"
    requests = "/api/v1/applications/{app}/requests"
    one = requests + "/{request_id}"
    return [
        Route(
            "GET",
            policy_path,
            get_policy,
            "approval_policies.get",
            # Auditors read settings without secrets (issue 3); a policy holds none.
            Permission.APP_READ,
            "Get the approval policy of an attached profile",
            "approvals",
        ),
        Route(
            "PUT",
            policy_path,
            put_policy,
            "approval_policies.put",
            Permission.APP_ADMIN,
            "Create or replace the approval policy of an attached profile",
            "approvals",
            body=models.ApprovalPolicyBody,
            responses={200: "Replaced", 201: "Created"},
        ),
        Route(
            "DELETE",
            policy_path,
            delete_policy,
            "approval_policies.delete",
            Permission.APP_ADMIN,
            "Remove the approval policy (its open requests are cancelled)",
            "approvals",
        ),
        Route(
            "GET",
            requests,
            list_requests,
            "requests.list",
            Permission.APP_READ,
            "List certificate requests waiting for (or past) approval",
            "approvals",
            query=models.RequestQuery,
        ),
        Route(
            "GET",
            one,
            get_request,
            "requests.get",
            Permission.APP_READ,
            "Get a request; once issued it carries the certificate and chain",
            "approvals",
        ),
        Route(
            "POST",
            one + "/approve",
            _decide(Decision.APPROVE),
            "requests.approve",
            Permission.APP_ISSUE,
            "Approve the current step (approvers named in it only)",
            "approvals",
            body=models.CommentBody,
            body_optional=True,
        ),
        Route(
            "POST",
            one + "/reject",
            _decide(Decision.REJECT),
            "requests.reject",
            Permission.APP_ISSUE,
            "Reject a request, saying why (approvers of the current step only)",
            "approvals",
            body=models.CommentBody,
        ),
        Route(
            "POST",
            one + "/cancel",
            _decide(Decision.CANCEL),
            "requests.cancel",
            # The requester's own act (the core checks that), but inside the application: a
            # requester who lost every role there can no longer reach it.
            Permission.APP_READ,
            "Cancel your own request",
            "approvals",
            body=models.CommentBody,
            body_optional=True,
        ),
    ]
