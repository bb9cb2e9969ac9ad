"""Storing decisions on certificate requests: read, apply a rule of gateway.core.approval,
write conditionally on the version that was read, audit in the same transaction.

A conditional write that finds the row changed stores nothing; the decision is then taken
again on a fresh read, so a rule always judges the state it is applied to. That is what
makes two approvers approving the last step at once yield one approval of the request
(issue 3, "Bad input") rather than two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from gateway.core import approval
from gateway.core.errors import Conflict, NotFound
from gateway.core.model import ApprovalPolicy, AuditEvent, CertificateRequest, RequestState
from gateway.core.ports import Clock, EventPublisher, TransactionFactory, UnitOfWork

# Conditional writes that lose a race start over from a fresh read this many times.
_ATTEMPTS = 5

# A rule: the request as it should become, or None when there is nothing to store.
Decide = Callable[[CertificateRequest, ApprovalPolicy | None, datetime], CertificateRequest | None]


async def policy_of(uow: UnitOfWork, request: CertificateRequest) -> ApprovalPolicy | None:
    """The policy a request is judged by: its application's for the profile, or for a legacy
    request (no application) the profile's legacy policy."""
    if request.application_id is None:
        return await uow.approval_policies.get_legacy(request.profile_id)
    return await uow.approval_policies.get_for(request.application_id, request.profile_id)


async def load_request(
    uow: UnitOfWork, request_id: uuid.UUID, application_id: uuid.UUID | None = None
) -> CertificateRequest:
    """The request; NotFound also when it belongs to another application than the one named
    in the path, so ids cannot be probed across applications."""
    found = await uow.requests.get(request_id)
    if found is None or (application_id is not None and found.application_id != application_id):
        raise NotFound("request not found")
    return found


class RequestDecisions:
    def __init__(
        self, transactions: TransactionFactory[UnitOfWork], clock: Clock, events: EventPublisher
    ) -> None:
        self._tx = transactions
        self._clock = clock
        self._events = events

    async def decide(
        self,
        request_id: uuid.UUID,
        application_id: uuid.UUID | None,
        decide: Decide,
        action: str,
        actor: str,
        *,
        source_ip: str | None = None,
        comment: str = "",
    ) -> CertificateRequest:
        """Apply `decide` to the current request and store its result with an `action`
        audit event. An open request past its expiry is expired instead (request_expired)."""
        for _ in range(_ATTEMPTS):
            now = self._clock.now()
            async with self._tx.transaction(read_only=True) as uow:
                current = await load_request(uow, request_id, application_id)
                policy = await policy_of(uow, current)
            if approval.is_due(current, now):
                if (await self.expire(current, now)).state is RequestState.EXPIRED:
                    raise Conflict("request has expired", code="request_expired")
                continue
            updated = decide(current, policy, now)
            if updated is None:
                return current
            # The step the decision was made on: the request may have moved past it.
            details = {"step": current.step, "comment": comment}
            saved = await self.store(
                current, updated, action, actor, now, source_ip=source_ip, details=details
            )
            if saved is not None:
                return saved
        raise Conflict("the request is changing concurrently; try again", code="request_busy")

    async def expire(self, current: CertificateRequest, now: datetime) -> CertificateRequest:
        """Expire `current` if it is due; the request as it is afterwards."""
        expired = approval.expire_if_due(current, now)
        if expired is None:
            return current
        saved = await self.store(current, expired, "request.expired", "system", now)
        if saved is not None:
            return saved
        async with self._tx.transaction(read_only=True) as uow:
            return await load_request(uow, current.id)  # changed meanwhile: that stands

    async def expire_due(self, requests: Sequence[CertificateRequest]) -> int:
        """Expire those of `requests` whose approval window has passed; how many were."""
        now = self._clock.now()
        count = 0
        for request in requests:
            if approval.is_due(request, now):
                if (await self.expire(request, now)).state is RequestState.EXPIRED:
                    count += 1
        return count

    async def store(
        self,
        current: CertificateRequest,
        updated: CertificateRequest,
        action: str,
        actor: str,
        now: datetime,
        *,
        source_ip: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> CertificateRequest | None:
        """Write `updated` if the row is still `current`, with its audit event; None if the
        row had changed (nothing is written then)."""
        async with self._tx.transaction() as uow:
            saved = await uow.requests.transition(updated, current)
            if saved is None:
                return None
            event = await audit_event(
                uow, saved, action, actor, now, source_ip=source_ip, details=details
            )
            await uow.audit.add(event)
        await self._events.publish(event)
        return saved


async def audit_event(
    uow: UnitOfWork,
    request: CertificateRequest,
    action: str,
    actor: str,
    now: datetime,
    *,
    source_ip: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """`request_event` with the project filled in from the request's application (a legacy
    request's: from its profile)."""
    if request.application_id is not None:
        app = await uow.applications.get(request.application_id)
        project_id = app.project_id if app else None
    else:
        profile = await uow.profiles.get(request.profile_id)
        project_id = profile.project_id if profile else None
    return approval.request_event(
        request,
        action,
        actor,
        now,
        project_id=project_id,
        source_ip=source_ip,
        details=details,
    )
