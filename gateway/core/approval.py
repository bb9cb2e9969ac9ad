"""Human approval of enrollments (issue 3, "Approval policies").

The issue fixes the life of a request: "open → approved → issued, or rejected / cancelled /
expired". The rules below are pure functions over `CertificateRequest` (DESIGN.md: state
rules are pure functions that cite their source); EnrollmentService stores what they return
with a write that is conditional on the version it read, so racing decisions cannot both
land. `PolicyApprovalGate` is the ApprovalGate the enrollment core consults.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from gateway.core.errors import Conflict, Forbidden
from gateway.core.model import (
    Approval,
    ApprovalPolicy,
    ApprovalStep,
    AuditEvent,
    CertificateRequest,
    CertificateStatus,
    RequestState,
    new_id,
)
from gateway.core.ports import Clock, EventPublisher, TransactionFactory, UnitOfWork

if TYPE_CHECKING:
    from gateway.core.enrollment import EnrollmentRequest
    from gateway.core.template import CertificateTemplate

log = logging.getLogger(__name__)

# How long a polling client is told to wait (EST 202 / ACME `processing` Retry-After).
# Humans approve in minutes, not seconds; a minute keeps polling traffic negligible.
RETRY_AFTER_SECONDS = 60

APPROVED = "approved"
REJECTED = "rejected"

# issue 3: "States: open → approved → issued, or rejected / cancelled / expired."
# OPEN → OPEN is a completed step that is not the last one. APPROVED → REJECTED is the
# policy engine refusing the stored CSR at issuance time (policy changed meanwhile);
# APPROVED → CANCELLED lets a requester give up on a request whose issuance keeps failing.
_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.OPEN: frozenset(
        {
            RequestState.OPEN,
            RequestState.APPROVED,
            RequestState.REJECTED,
            RequestState.CANCELLED,
            RequestState.EXPIRED,
        }
    ),
    RequestState.APPROVED: frozenset(
        {RequestState.ISSUED, RequestState.REJECTED, RequestState.CANCELLED}
    ),
    RequestState.ISSUED: frozenset(),
    RequestState.REJECTED: frozenset(),
    RequestState.CANCELLED: frozenset(),
    RequestState.EXPIRED: frozenset(),
}

# States in which a request still stands for its CSR: a repeated enrollment of the same CSR
# joins it instead of opening another (EST/SCEP clients resend the request while polling).
LIVE_STATES = (RequestState.OPEN, RequestState.APPROVED)


class Decision(enum.StrEnum):
    """What a principal decides about a request: an approver approves (one step at a time)
    or rejects; the requester cancels."""

    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"

    @property
    def action(self) -> str:
        """The audit action it records."""
        return {"approve": "request.approved", "reject": "request.rejected"}.get(
            self.value, "request.cancelled"
        )


@dataclass(frozen=True)
class Pending:
    """The enrollment waits for approval; poll again after `retry_after` seconds."""

    request_id: uuid.UUID
    retry_after: int


@dataclass(frozen=True)
class Resume:
    """A stored, already approved request covers this enrollment: finish it (issue its
    certificate, or hand out the one already issued) instead of opening another."""

    request_id: uuid.UUID
    retry_after: int


def can_transition(current: RequestState, new: RequestState) -> bool:
    return new in _TRANSITIONS[current]


def is_final(state: RequestState) -> bool:
    return not _TRANSITIONS[state]


def is_due(request: CertificateRequest, now: datetime) -> bool:
    """Only open requests expire: an approved one has been decided and only waits for the CA."""
    return request.state is RequestState.OPEN and now >= request.expires_at


def fingerprint(
    application_id: uuid.UUID | None,
    profile_id: uuid.UUID,
    requester: str,
    csr_der: bytes,
    renewed_from: uuid.UUID | None = None,
) -> str:
    """sha256 over who asks, for what, with which CSR. The target is included so that one CSR
    sent to two profiles makes two requests, and `renewed_from` so that renewing with the
    same CSR is a new request rather than a replay of the original one. A legacy enrollment
    (no application) hashes an empty application part, which no application id is."""
    digest = hashlib.sha256()
    for part in (
        application_id.bytes if application_id else b"",
        profile_id.bytes,
        requester.encode(),
        renewed_from.bytes if renewed_from else b"",
        csr_der,
    ):
        # Length-prefixed so that no two different tuples hash the same.
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.hexdigest()


def _move(
    request: CertificateRequest, state: RequestState, now: datetime, **changes: object
) -> CertificateRequest:
    if not can_transition(request.state, state):
        raise Conflict(
            f"request is {request.state.value}; it cannot become {state.value}",
            code="request_closed",
        )
    return dataclasses.replace(request, state=state, updated_at=now, **changes)  # type: ignore[arg-type]


def _require_open(request: CertificateRequest, now: datetime) -> None:
    if request.state is not RequestState.OPEN:
        raise Conflict(f"request is {request.state.value}", code="request_closed")
    if is_due(request, now):
        # The caller stores the expiry (expire_if_due) before answering with this.
        raise Conflict("request has expired", code="request_expired")


def current_step(request: CertificateRequest, policy: ApprovalPolicy | None) -> ApprovalStep:
    """Steps are read from the policy as it is now, so an admin can fix a stuck request
    (an approver who left) by editing the policy."""
    if policy is None:
        raise Conflict(
            "the approval policy of this request was removed", code="approval_policy_removed"
        )
    if request.step >= len(policy.steps):
        raise Conflict(
            "the approval policy lost the step this request was waiting for; "
            "cancel it and ask again",
            code="approval_policy_changed",
        )
    return policy.steps[request.step]


def step_approvers(request: CertificateRequest, step: ApprovalStep) -> frozenset[uuid.UUID]:
    """Who approved the current step and still counts (is still named in it)."""
    return frozenset(
        a.principal_id
        for a in request.approvals
        if a.step == request.step and a.decision == APPROVED and a.principal_id in step.approvers
    )


def _check_decider(
    request: CertificateRequest, step: ApprovalStep, principal_id: uuid.UUID
) -> None:
    # issue 3: "An approver cannot approve their own request." Checked before membership of
    # the step: a requester named as approver must hear why, not "not an approver".
    if request.requester_id is not None and principal_id == request.requester_id:
        raise Forbidden("you cannot decide on your own request", code="self_approval")
    if principal_id not in step.approvers:
        raise Forbidden(
            f"you are not an approver of step {request.step + 1} of this request",
            code="not_an_approver",
        )


def record_approval(
    request: CertificateRequest,
    policy: ApprovalPolicy | None,
    principal_id: uuid.UUID,
    now: datetime,
    comment: str = "",
) -> CertificateRequest:
    """One approval. Completing a step moves to the next; completing the last one approves
    the request (issue 3: ordered steps, each needing `required` distinct approvals)."""
    _require_open(request, now)
    step = current_step(request, policy)
    _check_decider(request, step, principal_id)
    done = step_approvers(request, step)
    if principal_id in done:
        raise Conflict("you already approved this step", code="already_approved")
    approvals = (
        *request.approvals,
        Approval(request.step, principal_id, APPROVED, comment, now),
    )
    if len(done) + 1 < step.required:
        return _move(request, RequestState.OPEN, now, approvals=approvals)
    assert policy is not None  # current_step raised otherwise
    next_step = request.step + 1
    if next_step < len(policy.steps):
        return _move(request, RequestState.OPEN, now, approvals=approvals, step=next_step)
    return _move(request, RequestState.APPROVED, now, approvals=approvals)


def reject(
    request: CertificateRequest,
    policy: ApprovalPolicy | None,
    principal_id: uuid.UUID,
    now: datetime,
    comment: str,
) -> CertificateRequest:
    """One approver of the current step rejecting closes the request for everyone."""
    _require_open(request, now)
    _check_decider(request, current_step(request, policy), principal_id)
    approvals = (
        *request.approvals,
        Approval(request.step, principal_id, REJECTED, comment, now),
    )
    return _move(request, RequestState.REJECTED, now, approvals=approvals, comment=comment)


def cancel(
    request: CertificateRequest, principal_id: uuid.UUID, now: datetime, comment: str = ""
) -> CertificateRequest:
    """issue 3: cancel "(by the requester)". An approved request may be cancelled too: it
    only waits for the CA, and its requester may no longer want it."""
    if request.requester_id is None or principal_id != request.requester_id:
        raise Forbidden("only the requester can cancel a request", code="not_requester")
    if request.state not in LIVE_STATES:
        raise Conflict(f"request is {request.state.value}", code="request_closed")
    if is_due(request, now):
        raise Conflict("request has expired", code="request_expired")
    return _move(request, RequestState.CANCELLED, now, comment=comment)


def withdraw(request: CertificateRequest, now: datetime, comment: str) -> CertificateRequest:
    """Cancel an open request on the gateway's own account: its approval policy was removed,
    so nobody could ever approve it."""
    if request.state is not RequestState.OPEN:
        raise Conflict(f"request is {request.state.value}", code="request_closed")
    return _move(request, RequestState.CANCELLED, now, comment=comment)


def expire_if_due(request: CertificateRequest, now: datetime) -> CertificateRequest | None:
    """The expired request when its approval window has passed, else None."""
    if not is_due(request, now):
        return None
    return _move(request, RequestState.EXPIRED, now)


def mark_issued(
    request: CertificateRequest, certificate_id: uuid.UUID, now: datetime
) -> CertificateRequest:
    return _move(request, RequestState.ISSUED, now, certificate_id=certificate_id)


def reject_at_issuance(
    request: CertificateRequest, message: str, now: datetime
) -> CertificateRequest:
    """The stored CSR no longer passes the profile's policy: nobody may issue it."""
    return _move(request, RequestState.REJECTED, now, comment=message)


def request_event(
    request: CertificateRequest,
    action: str,
    actor: str,
    now: datetime,
    *,
    project_id: uuid.UUID | None = None,
    source_ip: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    return AuditEvent(
        id=new_id(),
        at=now,
        actor=actor,
        action=action,
        target_type="certificate_request",
        target_id=str(request.id),
        project_id=project_id,
        application_id=request.application_id,
        source_ip=source_ip,
        details={"state": request.state.value, "step": request.step, **(details or {})},
    )


ResolveRequester = Callable[[str], Awaitable[uuid.UUID | None]]


class PolicyApprovalGate:
    """The ApprovalGate of EnrollmentService: an enrollment under an application profile with
    an approval policy becomes a stored request, unless its requester is in the bypass list.
    A legacy profile-scoped enrollment (no application) is gated the same way by its
    project's legacy policy for that profile.

    `resolve_requester` maps a requester name to a principal id for callers that do not yet
    pass `requester_id`; without an id the requester can neither bypass nor cancel.
    """

    def __init__(
        self,
        transactions: TransactionFactory[UnitOfWork],
        clock: Clock,
        events: EventPublisher,
        *,
        retry_after: int = RETRY_AFTER_SECONDS,
        resolve_requester: ResolveRequester | None = None,
    ) -> None:
        self._tx = transactions
        self._clock = clock
        self._events = events
        self._retry_after = retry_after
        self._resolve = resolve_requester

    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | Resume | None:
        app = request.application
        app_id = app.id if app is not None else None

        async def load(uow: UnitOfWork) -> ApprovalPolicy | None:
            if app_id is None:
                return await uow.approval_policies.get_legacy(request.profile.id)
            return await uow.approval_policies.get_for(app_id, request.profile.id)

        policy = await self._tx.cached(("approval_policy", app_id, request.profile.id), load)
        if policy is None:
            return None
        requester_id = request.requester_id
        if requester_id is None and self._resolve is not None:
            requester_id = await self._resolve(request.requester)
        if requester_id is not None and requester_id in policy.bypass:
            return None
        if isinstance(request.csr, bytes | str):
            raise TypeError("the gate expects the parsed CSR (EnrollmentService passes it)")
        csr_der = request.csr.public_bytes(serialization.Encoding.DER)
        fp = fingerprint(
            app_id, request.profile.id, request.requester, csr_der, request.renewed_from
        )
        now = self._clock.now()
        for _ in range(3):
            async with self._tx.transaction(read_only=True) as uow:
                existing = await self._joinable(uow, fp, now)
            if isinstance(existing, Pending | Resume):
                return existing
            opened = await self._open(request, policy, requester_id, fp, now, existing)
            if opened is not None:
                return opened
            # Lost a race with an identical enrollment: join the request that won.
        raise Conflict("the same request is being made concurrently; retry", code="request_busy")

    async def _joinable(
        self, uow: UnitOfWork, fp: str, now: datetime
    ) -> Pending | Resume | CertificateRequest | None:
        """What an identical earlier enrollment left: a request to wait on or finish, an
        open request that is past its expiry (to expire), or nothing."""
        found = await uow.requests.find_by_fingerprint(
            fp, (RequestState.OPEN, RequestState.APPROVED, RequestState.ISSUED)
        )
        if found is None:
            return None
        if found.state is RequestState.OPEN:
            return found if is_due(found, now) else Pending(found.id, self._retry_after)
        if found.state is RequestState.APPROVED:
            return Resume(found.id, self._retry_after)
        # ISSUED: hand out that certificate while it is still good (a client fetching what
        # it waited for); a revoked or expired one does not stop a fresh request.
        assert found.certificate_id is not None
        cert = await uow.certificates.get(found.certificate_id)
        if cert is not None and cert.status is CertificateStatus.ACTIVE and cert.not_after > now:
            return Resume(found.id, self._retry_after)
        return None

    async def _open(
        self,
        request: EnrollmentRequest,
        policy: ApprovalPolicy,
        requester_id: uuid.UUID | None,
        fp: str,
        now: datetime,
        stale: CertificateRequest | None,
    ) -> Pending | None:
        """Store a new open request (expiring a stale one first); None if an identical
        request got in first (the partial unique index on live fingerprints)."""
        assert not isinstance(request.csr, bytes | str)
        created = CertificateRequest(
            id=new_id(),
            application_id=request.application.id if request.application else None,
            profile_id=request.profile.id,
            csr_pem=request.csr.public_bytes(serialization.Encoding.PEM).decode(),
            fingerprint=fp,
            requester=request.requester,
            requester_id=requester_id,
            method=request.method,
            state=RequestState.OPEN,
            step=0,
            approvals=(),
            requested_validity_days=request.requested_validity_days,
            renewed_from=request.renewed_from,
            certificate_id=None,
            comment="",
            created_at=now,
            expires_at=now + timedelta(seconds=policy.request_ttl_seconds),
            updated_at=now,
        )
        project_id = request.profile.project_id
        events: list[AuditEvent] = []
        try:
            async with self._tx.transaction() as uow:
                if stale is not None:
                    expired = expire_if_due(stale, now)
                    if expired is not None and await uow.requests.transition(expired, stale):
                        events.append(
                            request_event(
                                expired, "request.expired", "system", now, project_id=project_id
                            )
                        )
                await uow.requests.add(created)
                events.append(
                    request_event(
                        created,
                        "request.created",
                        request.requester,
                        now,
                        project_id=project_id,
                        source_ip=request.source_ip,
                        details={
                            "profile": request.profile.slug,
                            "method": request.method.value,
                            "subject": request.csr.subject.rfc4514_string(),
                            "renewed_from": str(request.renewed_from)
                            if request.renewed_from
                            else None,
                        },
                    )
                )
                for event in events:
                    await uow.audit.add(event)
        except Conflict as err:
            if err.code != "request_exists":
                raise
            return None
        for event in events:
            await self._events.publish(event)
        return Pending(created.id, self._retry_after)
