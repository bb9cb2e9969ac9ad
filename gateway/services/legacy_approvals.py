"""A legacy project's own approval policies (issue 12, item 5) and the requests they hold.

A legacy policy (application_id NULL, project_id set) gates the legacy profile-scoped
enrollment (`/profiles/{profile_id}/…`, `/.well-known/est/{profile_id}/…`) of one of the
project's profiles, exactly as an application's policy gates that application's
enrollment (gateway.core.approval.PolicyApprovalGate). Legacy policies come with the
legacy project; they can be read, edited and deleted, but not created: new approval
rules belong inside an Application of the active project (409 `legacy_read_only`).

Their requests are decided by the principals named in the policy's steps, through the
same EnrollmentService rules as application requests (not your own, one step at a time).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, NoReturn

from gateway.core.approval import Decision
from gateway.core.errors import Conflict, NotFound
from gateway.core.model import (
    ApprovalPolicy,
    Certificate,
    CertificateRequest,
    Page,
    Project,
    RequestState,
)
from gateway.services.approvals import Decider, parse_rules, policy_summary, withdraw_open
from gateway.services.audit import Actor, event
from store.repos.approvals import RequestFilter

if TYPE_CHECKING:
    from gateway.services.graph import Services
    from store.db import Tx


async def _project(tx: Tx, project_id: uuid.UUID) -> Project:
    project = await tx.projects.get(project_id)
    if project is None:
        raise NotFound("project not found")
    return project


async def _policy(tx: Tx, project_id: uuid.UUID, policy_id: uuid.UUID) -> ApprovalPolicy:
    """A legacy policy of this project; NotFound for an application's policy or another
    project's, so ids cannot be probed across projects."""
    await _project(tx, project_id)
    policy = await tx.approval_policies.get(policy_id)
    if policy is None or not policy.legacy or policy.project_id != project_id:
        raise NotFound("no such approval policy in this project")
    return policy


async def _slugs(tx: Tx, policies: list[ApprovalPolicy]) -> list[tuple[ApprovalPolicy, str]]:
    out = []
    for policy in policies:
        profile = await tx.profiles.get(policy.profile_id)
        out.append((policy, profile.slug if profile else ""))
    return out


async def list_policies(
    services: Services, project_id: uuid.UUID
) -> list[tuple[ApprovalPolicy, str]]:
    """The project's legacy policies with their profile's slug."""
    async with services.db.transaction(read_only=True) as tx:
        await _project(tx, project_id)
        return await _slugs(tx, await tx.approval_policies.list_legacy(project_id))


async def get_policy(
    services: Services, project_id: uuid.UUID, policy_id: uuid.UUID
) -> tuple[ApprovalPolicy, str]:
    async with services.db.transaction(read_only=True) as tx:
        return (await _slugs(tx, [await _policy(tx, project_id, policy_id)]))[0]


async def refuse_create(services: Services, project_id: uuid.UUID) -> NoReturn:
    """Creating one is refused whatever the body: new approval rules go into an
    Application (an unknown project is still a 404)."""
    async with services.db.transaction(read_only=True) as tx:
        project = await _project(tx, project_id)
    raise Conflict(
        f"approval policies of project '{project.name}' are legacy: they can be read, edited "
        "and deleted, not created; create it inside an Application instead (PUT "
        "/api/v1/applications/{app}/profiles/{profile}/approval-policy)",
        code="legacy_read_only",
    )


async def update_policy(
    services: Services,
    actor: Actor,
    project_id: uuid.UUID,
    policy_id: uuid.UUID,
    body: dict[str, Any],
) -> tuple[ApprovalPolicy, str]:
    """Replace the steps, bypass and TTL (the body of an application's policy). Open
    requests are judged by the new steps, as for an application's policy."""
    now = services.clock.now()
    async with services.db.transaction() as tx:
        before = await _policy(tx, project_id, policy_id)
        steps, bypass, ttl = await parse_rules(tx, body)
        wanted = ApprovalPolicy(
            id=before.id,
            application_id=None,
            profile_id=before.profile_id,
            steps=steps,
            bypass=bypass,
            request_ttl_seconds=ttl,
            created_at=before.created_at,
            project_id=project_id,
        )
        saved = await tx.approval_policies.update_legacy(wanted)
        if saved is None:  # deleted since it was read
            raise NotFound("no such approval policy in this project")
        (result,) = await _slugs(tx, [saved])
        await tx.audit.add(
            event(
                actor,
                now,
                "approval_policy.updated",
                "approval_policy",
                saved.id,
                project_id=project_id,
                details={
                    "profile": result[1],
                    "legacy": True,
                    "before": policy_summary(before),
                    "after": policy_summary(saved),
                },
            )
        )
    return result


async def delete_policy(
    services: Services, actor: Actor, project_id: uuid.UUID, policy_id: uuid.UUID
) -> int:
    """Remove it: the profile's legacy enrollment issues without approval again, and its
    open requests are cancelled (nobody could approve them). How many were."""
    now = services.clock.now()
    async with services.db.transaction() as tx:
        before = await _policy(tx, project_id, policy_id)
        if not await tx.approval_policies.delete_legacy(policy_id):
            raise NotFound("no such approval policy in this project")
        (with_slug,) = await _slugs(tx, [before])
        await tx.audit.add(
            event(
                actor,
                now,
                "approval_policy.deleted",
                "approval_policy",
                before.id,
                project_id=project_id,
                details={
                    "profile": with_slug[1],
                    "legacy": True,
                    "before": policy_summary(before),
                },
            )
        )
        return await withdraw_open(
            tx,
            actor,
            now,
            RequestFilter(
                legacy_project_id=project_id, profile_id=before.profile_id, state=RequestState.OPEN
            ),
            project_id=project_id,
        )


# --- requests --------------------------------------------------------------------------------


async def _check_request(services: Services, project_id: uuid.UUID, request_id: uuid.UUID) -> None:
    """NotFound unless it is a legacy request of one of the project's profiles."""
    async with services.db.transaction(read_only=True) as tx:
        await _project(tx, project_id)
        request = await tx.requests.get(request_id)
        profile = await tx.profiles.get(request.profile_id) if request else None
    if (
        request is None
        or request.application_id is not None
        or profile is None
        or profile.project_id != project_id
    ):
        raise NotFound("request not found")


async def list_requests(
    services: Services,
    project_id: uuid.UUID,
    state: RequestState | None,
    limit: int,
    offset: int,
) -> Page[CertificateRequest]:
    """The project's legacy requests, newest first; open ones past their expiry are expired
    first, as in an application's list."""
    now = services.clock.now()
    async with services.db.transaction(read_only=True) as tx:
        await _project(tx, project_id)
        due = await tx.requests.list_due(None, now, legacy_project_id=project_id)
    if due:
        await services.enrollment.expire_due(due)
    async with services.db.transaction(read_only=True) as tx:
        return await tx.requests.list(
            RequestFilter(legacy_project_id=project_id, state=state), limit, offset
        )


async def get_request(
    services: Services, project_id: uuid.UUID, request_id: uuid.UUID
) -> tuple[CertificateRequest, Certificate | None]:
    await _check_request(services, project_id, request_id)
    return await services.enrollment.fetch_request(request_id)


async def decide(
    services: Services,
    project_id: uuid.UUID,
    request_id: uuid.UUID,
    decision: Decision,
    who: Decider,
    comment: str,
) -> CertificateRequest:
    """Approve or reject a legacy request (the core checks the decider is an approver of
    its current step and not its requester)."""
    await _check_request(services, project_id, request_id)
    return await services.enrollment.decide(
        request_id,
        decision,
        who.principal_id,
        comment,
        actor=who.actor.name,
        source_ip=who.actor.source_ip,
    )
