"""Approval policies and certificate requests behind the REST API (issue 3, "Approval
policies"). Decisions themselves are EnrollmentService's; this module validates input,
resolves principals and keeps policy changes audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.approval import (
    Decision,
    PolicyApprovalGate,
    ResolveRequester,
    request_event,
    withdraw,
)
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    ApprovalStep,
    Certificate,
    CertificateRequest,
    Page,
    Principal,
    PrincipalKind,
    ProductRole,
    RequestState,
    new_id,
)
from gateway.services.audit import Actor, event
from store.repos.approvals import RequestFilter

if TYPE_CHECKING:
    from gateway.core.clock import SystemClock
    from gateway.events.bus import EventBus
    from gateway.services.graph import Services
    from gateway.targets import AttachedTarget
    from store.db import Database, Tx

# Actor names of REST callers (gateway.api.common.actor): "principal:<name>".
PRINCIPAL_ACTOR_PREFIX = "principal:"

DEFAULT_TTL_HOURS = 72
MAX_TTL_HOURS = 24 * 90  # an approval nobody gives within a quarter will not come
MAX_STEPS = 10
MAX_APPROVERS = 50
MAX_COMMENT = 2000

_POLICY_KEYS = frozenset({"steps", "bypass", "request_ttl_hours"})
_STEP_KEYS = frozenset({"approvers", "required"})
_DECISION_KEYS = frozenset({"comment"})


def approval_gate(db: Database, clock: SystemClock, events: EventBus) -> PolicyApprovalGate:
    """The gate EnrollmentService consults, for gateway.services.graph."""
    return PolicyApprovalGate(db, clock, events, resolve_requester=_requester_resolver(db))


def _requester_resolver(db: Database) -> ResolveRequester:
    """Requester name -> principal id, for enrollments that come without `requester_id`
    (REST callers are named "principal:<name>"); protocol identities resolve to None."""

    async def resolve(requester: str) -> uuid.UUID | None:
        if not requester.startswith(PRINCIPAL_ACTOR_PREFIX):
            return None
        async with db.transaction(read_only=True) as tx:
            found = await tx.principals.get_by_name(requester[len(PRINCIPAL_ACTOR_PREFIX) :])
        return found.id if found else None

    return resolve


# --- policies ------------------------------------------------------------------------------


def _unknown_keys(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise InvalidInput(
            f"unknown field(s) in {where}: {', '.join(unknown)} (allowed: {known})",
            code="unknown_field",
        )


@dataclass(frozen=True)
class Scope:
    """Whom an application's policy may name. `product_admin`: the caller is a Product
    Admin; an application Admin must not look principals up by name outside its
    application (a name is guessable, an id is not)."""

    application_id: uuid.UUID
    product_admin: bool


async def _may_name(
    tx: Tx, found: Principal, scope: Scope, *, by_name: bool, decides: bool
) -> bool:
    if await tx.members.get(scope.application_id, found.id) is not None:
        return True
    if by_name and not scope.product_admin:
        return False
    # Outside the application only a Product Admin reaches its requests: anyone else
    # named as an approver could never decide, and the requests would wait for ever.
    return found.product_role is ProductRole.ADMIN or not decides


async def _principal(
    tx: Tx, value: Any, where: str, scope: Scope | None = None, *, decides: bool = False
) -> Principal:
    """A principal named by id or by name; it must exist and not be disabled, and within
    `scope` be one the caller may name (else it is unknown, as one that does not exist)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: principals are given by id or name (strings)")
    by_name = False
    try:
        found = await tx.principals.get(uuid.UUID(value))
    except ValueError:
        found, by_name = await tx.principals.get_by_name(value.strip()), True
    if found is not None and scope is not None:
        if not await _may_name(tx, found, scope, by_name=by_name, decides=decides):
            found = None
    if found is None or found.disabled:
        raise InvalidInput(f"{where}: unknown principal '{value}'", code="unknown_principal")
    return found


async def _principals(
    tx: Tx, values: Any, where: str, scope: Scope | None = None, *, decides: bool = False
) -> tuple[Principal, ...]:
    if not isinstance(values, list):
        raise InvalidInput(f"{where} must be a list of principal ids or names")
    if len(values) > MAX_APPROVERS:
        raise InvalidInput(f"{where} names more than {MAX_APPROVERS} principals")
    found = [await _principal(tx, v, where, scope, decides=decides) for v in values]
    if len({p.id for p in found}) != len(found):
        raise InvalidInput(f"{where} names a principal twice")
    return tuple(found)


async def _step(tx: Tx, raw: Any, index: int, scope: Scope | None) -> ApprovalStep:
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object with approvers and required")
    _unknown_keys(raw, _STEP_KEYS, where)
    approvers = await _principals(
        tx, raw.get("approvers"), f"{where}.approvers", scope, decides=True
    )
    if not approvers:
        raise InvalidInput(f"{where}.approvers must name at least one principal")
    required = raw.get("required", 1)
    if not isinstance(required, int) or isinstance(required, bool):
        raise InvalidInput(f"{where}.required must be an integer")
    if not 1 <= required <= len(approvers):
        raise InvalidInput(
            f"{where}.required must be between 1 and the number of approvers ({len(approvers)})"
        )
    return ApprovalStep(tuple(p.id for p in approvers), required)


async def parse_policy(
    tx: Tx, target: AttachedTarget, body: dict[str, Any], now: datetime, *, product_admin: bool
) -> ApprovalPolicy:
    """The PUT body: {"steps": [{"approvers": [id or name, …], "required": n}, …],
    "bypass": [machine identity id or name, …], "request_ttl_hours": h}. Approvers must be
    able to reach the request: the application's members or Product Admins (Scope)."""
    scope = Scope(target.application.id, product_admin)
    steps, bypass, ttl_seconds = await parse_rules(tx, body, scope)
    return ApprovalPolicy(
        id=new_id(),
        application_id=target.application.id,
        profile_id=target.profile.id,
        steps=steps,
        bypass=bypass,
        request_ttl_seconds=ttl_seconds,
        created_at=now,
    )


async def parse_rules(
    tx: Tx, body: dict[str, Any], scope: Scope | None = None
) -> tuple[tuple[ApprovalStep, ...], tuple[uuid.UUID, ...], int]:
    """What a policy body sets, for an application's policy and a legacy one alike: the
    steps, the bypass principal ids and the request TTL in seconds."""
    _unknown_keys(body, _POLICY_KEYS, "the approval policy")
    steps_raw = body.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise InvalidInput("steps must be a non-empty list of approval steps")
    if len(steps_raw) > MAX_STEPS:
        raise InvalidInput(f"at most {MAX_STEPS} approval steps")
    steps = tuple([await _step(tx, raw, i, scope) for i, raw in enumerate(steps_raw)])
    bypass = await _principals(tx, body.get("bypass", []), "bypass", scope)
    # issue 3: "an optional bypass for named machine identities" — a person always asks.
    people = [p.name for p in bypass if p.kind is not PrincipalKind.MACHINE]
    if people:
        raise InvalidInput(f"bypass may only name machine identities, not {', '.join(people)}")
    ttl = body.get("request_ttl_hours", DEFAULT_TTL_HOURS)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL_HOURS:
        raise InvalidInput(f"request_ttl_hours must be an integer from 1 to {MAX_TTL_HOURS}")
    return steps, tuple(p.id for p in bypass), ttl * 3600


def policy_summary(policy: ApprovalPolicy) -> dict[str, Any]:
    """What the audit log keeps of a policy (ids only: names can change)."""
    return {
        "steps": [
            {"approvers": [str(a) for a in s.approvers], "required": s.required}
            for s in policy.steps
        ],
        "bypass": [str(b) for b in policy.bypass],
        "request_ttl_hours": policy.request_ttl_seconds // 3600,
    }


async def get_policy(services: Services, target: AttachedTarget) -> ApprovalPolicy:
    async with services.db.transaction(read_only=True) as tx:
        policy = await tx.approval_policies.get_for(target.application.id, target.profile.id)
    if policy is None:
        raise NotFound(
            f"profile '{target.profile.slug}' of '{target.application.slug}' has no approval policy"
        )
    return policy


async def put_policy(
    services: Services,
    target: AttachedTarget,
    actor: Actor,
    body: dict[str, Any],
    *,
    product_admin: bool = True,
) -> tuple[ApprovalPolicy, bool]:
    """Create or replace; (policy, created). Open requests are judged by the new steps.
    `product_admin` False: the caller is only the application's Admin (Scope)."""
    now = services.clock.now()
    app = target.application
    async with services.db.transaction() as tx:
        wanted = await parse_policy(tx, target, body, now, product_admin=product_admin)
        before = await tx.approval_policies.get_for(app.id, target.profile.id)
        saved = await tx.approval_policies.put(wanted)
        await tx.audit.add(
            event(
                actor,
                now,
                "approval_policy.updated" if before else "approval_policy.created",
                "approval_policy",
                saved.id,
                project_id=app.project_id,
                application_id=app.id,
                details={
                    "profile": target.profile.slug,
                    "before": policy_summary(before) if before else None,
                    "after": policy_summary(saved),
                },
            )
        )
    return saved, before is None


async def delete_policy(services: Services, target: AttachedTarget, actor: Actor) -> int:
    """Remove the policy; its open requests are cancelled (nobody could approve them any
    more). Returns how many were. Approved requests keep waiting for their certificate."""
    now = services.clock.now()
    app = target.application
    async with services.db.transaction() as tx:
        before = await tx.approval_policies.get_for(app.id, target.profile.id)
        if before is None or not await tx.approval_policies.delete(app.id, target.profile.id):
            raise NotFound(
                f"profile '{target.profile.slug}' of '{app.slug}' has no approval policy"
            )
        await tx.audit.add(
            event(
                actor,
                now,
                "approval_policy.deleted",
                "approval_policy",
                before.id,
                project_id=app.project_id,
                application_id=app.id,
                details={"profile": target.profile.slug, "before": policy_summary(before)},
            )
        )
        return await withdraw_open(
            tx,
            actor,
            now,
            RequestFilter(
                application_id=app.id, profile_id=target.profile.id, state=RequestState.OPEN
            ),
            project_id=app.project_id,
        )


async def withdraw_open(
    tx: Tx, actor: Actor, now: datetime, open_filter: RequestFilter, *, project_id: uuid.UUID
) -> int:
    """Cancel every open request `open_filter` finds, in the caller's transaction (its
    approval policy is gone: nobody could approve them any more), each with its audit
    event. Returns how many were."""
    withdrawn = 0
    while True:
        page = await tx.requests.list(open_filter, limit=200)
        if not page.items:
            break
        for request in page.items:
            saved = await tx.requests.transition(
                withdraw(request, now, "the approval policy was removed"), request
            )
            if saved is None:
                continue
            withdrawn += 1
            await tx.audit.add(
                request_event(
                    saved,
                    "request.cancelled",
                    actor.name,
                    now,
                    project_id=project_id,
                    source_ip=actor.source_ip,
                    details={"comment": saved.comment, "reason": "approval_policy_removed"},
                )
            )
    return withdrawn


# --- requests --------------------------------------------------------------------------------


def parse_state(value: str | None) -> RequestState | None:
    if value is None:
        return None
    try:
        return RequestState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in RequestState)
        raise InvalidInput(f"unknown state '{value}' (allowed: {allowed})") from None


async def list_requests(
    services: Services,
    app: Application,
    state: RequestState | None,
    limit: int,
    offset: int,
) -> Page[CertificateRequest]:
    """Newest first. Open requests past their expiry are expired first, so that the list
    never shows as open what can no longer be approved."""
    async with services.db.transaction(read_only=True) as tx:
        due = await tx.requests.list_due(app.id, services.clock.now())
    if due:
        await services.enrollment.expire_due(due)
    async with services.db.transaction(read_only=True) as tx:
        return await tx.requests.list(
            RequestFilter(application_id=app.id, state=state), limit, offset
        )


async def get_request(
    services: Services, app: Application, request_id: uuid.UUID
) -> tuple[CertificateRequest, Certificate | None]:
    return await services.enrollment.fetch_request(request_id, application_id=app.id)


def decision_comment(body: dict[str, Any], decision: Decision) -> str:
    """The comment of a decision; a rejection must say why."""
    required = decision is Decision.REJECT
    _unknown_keys(body, _DECISION_KEYS, "the request body")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment must be a string of at most {MAX_COMMENT} characters")
    if required and not comment.strip():
        raise InvalidInput("a rejection needs a comment saying why", code="comment_required")
    return comment.strip()


@dataclass(frozen=True)
class Decider:
    """Who decides: the principal (approver / requester checks) and the audit actor."""

    principal_id: uuid.UUID
    actor: Actor


async def decide(
    services: Services,
    app: Application,
    request_id: uuid.UUID,
    decision: Decision,
    who: Decider,
    comment: str,
) -> CertificateRequest:
    """Approve, reject or cancel a request of `app` (gateway.core.approval.Decision)."""
    return await services.enrollment.decide(
        request_id,
        decision,
        who.principal_id,
        comment,
        actor=who.actor.name,
        source_ip=who.actor.source_ip,
        application_id=app.id,
    )
