"""Builders of the role x route matrix (test_access_matrix.py) for a legacy project's
approval policies and requests: a fresh profile per case, with a legacy policy naming the
Product Admin (put in through the store: the REST API never creates one) and, for the
request routes, an open legacy request written to the store as a legacy EST enrollment
held by that policy would leave it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.appkeys import SERVICES
from gateway.core.model import (
    ApprovalPolicy,
    ApprovalStep,
    CertificateRequest,
    EnrollmentMethod,
    RequestState,
    new_id,
)
from tests.helpers.x509util import make_csr
from tests.integration.api.access_world import Call, World

Build = Callable[[World, str], Awaitable[Call]]


async def _legacy_policy(w: World) -> tuple[uuid.UUID, uuid.UUID]:
    """(policy id, profile id) of a legacy policy on a fresh profile."""
    profile_id = uuid.UUID(str((await w.profile())["id"]))
    policy = ApprovalPolicy(
        id=new_id(),
        application_id=None,
        profile_id=profile_id,
        steps=(ApprovalStep((uuid.UUID(w.principal_ids["product_admin"]),), 1),),
        bypass=(),
        request_ttl_seconds=3600,
        created_at=datetime.now(UTC),
        project_id=uuid.UUID(w.project_id),
    )
    async with w.app[SERVICES].db.transaction() as tx:
        await tx.approval_policies.add_legacy(policy)
    return policy.id, profile_id


def legacy_policy(with_body: bool = False) -> Build:
    async def build(w: World, caller: str) -> Call:
        policy_id, _ = await _legacy_policy(w)
        body = {"steps": [{"approvers": [w.principal_ids["product_admin"]]}]}
        return Call(
            {"project_id": w.project_id, "policy_id": str(policy_id)},
            body if with_body else None,
        )

    return build


def legacy_request(body: Any = None) -> Build:
    async def build(w: World, caller: str) -> Call:
        _, profile_id = await _legacy_policy(w)
        now = datetime.now(UTC)
        request = CertificateRequest(
            id=new_id(),
            application_id=None,
            profile_id=profile_id,
            csr_pem=make_csr(w.unique("legacy") + ".test")[0],
            fingerprint=uuid.uuid4().hex,
            requester="est:device",
            requester_id=None,
            method=EnrollmentMethod.EST,
            state=RequestState.OPEN,
            step=0,
            approvals=(),
            requested_validity_days=None,
            renewed_from=None,
            certificate_id=None,
            comment="",
            created_at=now,
            expires_at=now + timedelta(hours=1),
            updated_at=now,
        )
        async with w.app[SERVICES].db.transaction() as tx:
            await tx.requests.add(request)
        return Call({"project_id": w.project_id, "request_id": str(request.id)}, body)

    return build


def project(body: Any = None) -> Build:
    async def build(w: World, caller: str) -> Call:
        return Call({"project_id": w.project_id}, body)

    return build


def legacy_samples(sample: Callable[[int, Build], Any]) -> dict[str, Any]:
    """Every legacy approval route is the Product Admin's; `sample(status, build)` makes
    the matrix's Sample. Creating answers 409 legacy_read_only to the one caller allowed."""
    return {
        "legacy_approval_policies.list": sample(200, project()),
        "legacy_approval_policies.create": sample(409, project({"steps": []})),
        "legacy_approval_policies.get": sample(200, legacy_policy()),
        "legacy_approval_policies.put": sample(200, legacy_policy(with_body=True)),
        "legacy_approval_policies.delete": sample(200, legacy_policy()),
        "legacy_requests.list": sample(200, project()),
        "legacy_requests.get": sample(200, legacy_request()),
        "legacy_requests.approve": sample(200, legacy_request({})),
        "legacy_requests.reject": sample(200, legacy_request({"comment": "no"})),
    }
