"""State rules of certificate requests (issue 3, "Approval policies"), as pure functions,
and the approval gate's decisions that need no database."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import NOW, build_csr, make_profile

from gateway.core import approval
from gateway.core.enrollment import EnrollmentRequest
from gateway.core.errors import Conflict, DomainError, Forbidden
from gateway.core.model import (
    Application,
    Approval,
    ApprovalPolicy,
    ApprovalStep,
    CertificateRequest,
    EnrollmentMethod,
    RequestState,
)

REQUESTER = uuid.UUID(int=100)
A, B, C = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
ROBOT = uuid.UUID(int=50)
APP = Application(uuid.UUID(int=10), uuid.UUID(int=2), "payments", "Payments", "", NOW)

# Two steps: A and B must both approve, then C.
POLICY = ApprovalPolicy(
    id=uuid.UUID(int=20),
    application_id=APP.id,
    profile_id=uuid.UUID(int=1),
    steps=(ApprovalStep((A, B), 2), ApprovalStep((C,), 1)),
    bypass=(ROBOT,),
    request_ttl_seconds=3600,
    created_at=NOW,
)


def make_request(**changes: Any) -> CertificateRequest:
    values: dict[str, Any] = {
        "id": uuid.UUID(int=30),
        "application_id": APP.id,
        "profile_id": POLICY.profile_id,
        "csr_pem": "",
        "fingerprint": "f" * 64,
        "requester": "principal:ops",
        "requester_id": REQUESTER,
        "method": EnrollmentMethod.API,
        "state": RequestState.OPEN,
        "step": 0,
        "approvals": (),
        "requested_validity_days": None,
        "renewed_from": None,
        "certificate_id": None,
        "comment": "",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
        "updated_at": NOW,
    }
    return CertificateRequest(**(values | changes))


def approved_by(*who: uuid.UUID, step: int = 0) -> tuple[Approval, ...]:
    return tuple(Approval(step, p, "approved", "", NOW) for p in who)


LATER = NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("request_", "principal", "state", "step", "count"),
    [
        (make_request(), A, RequestState.OPEN, 0, 1),
        (make_request(approvals=approved_by(A)), B, RequestState.OPEN, 1, 2),
        (make_request(step=1, approvals=approved_by(A, B)), C, RequestState.APPROVED, 1, 3),
    ],
    ids=["ok/first-of-two", "ok/step-complete-advances", "ok/last-step-approves"],
)
def test_record_approval(
    request_: CertificateRequest, principal: uuid.UUID, state: RequestState, step: int, count: int
) -> None:
    result = approval.record_approval(request_, POLICY, principal, LATER, "ok")
    assert (result.state, result.step, len(result.approvals)) == (state, step, count)
    assert result.approvals[-1] == Approval(request_.step, principal, "approved", "ok", LATER)
    assert result.updated_at == LATER and result.version == request_.version


def test_ok_approval_of_a_removed_approver_no_longer_counts() -> None:
    # A approved, then the policy replaced A by C: B's approval alone does not complete.
    policy = dataclasses.replace(POLICY, steps=(ApprovalStep((B, C), 2), POLICY.steps[1]))
    result = approval.record_approval(make_request(approvals=approved_by(A)), policy, B, LATER)
    assert (result.state, result.step) == (RequestState.OPEN, 0)


def _fail_cases() -> list[Any]:
    cases: list[tuple[str, CertificateRequest, ApprovalPolicy | None, uuid.UUID, str]] = [
        ("not-an-approver", make_request(), POLICY, C, "not_an_approver"),
        ("self-approval", make_request(requester_id=A), POLICY, A, "self_approval"),
        ("twice", make_request(approvals=approved_by(A)), POLICY, A, "already_approved"),
        ("approved", make_request(state=RequestState.APPROVED), POLICY, A, "request_closed"),
        ("issued", make_request(state=RequestState.ISSUED), POLICY, A, "request_closed"),
        ("rejected", make_request(state=RequestState.REJECTED), POLICY, A, "request_closed"),
        ("cancelled", make_request(state=RequestState.CANCELLED), POLICY, A, "request_closed"),
        ("expired-state", make_request(state=RequestState.EXPIRED), POLICY, A, "request_closed"),
        ("past-expiry", make_request(expires_at=LATER), POLICY, A, "request_expired"),
        ("no-policy", make_request(), None, A, "approval_policy_removed"),
        ("step-gone", make_request(step=2), POLICY, A, "approval_policy_changed"),
    ]
    return [pytest.param(*case[1:], id=f"fail/{case[0]}") for case in cases]


@pytest.mark.parametrize(("request_", "policy", "principal", "code"), _fail_cases())
def test_record_approval_refused(
    request_: CertificateRequest, policy: ApprovalPolicy | None, principal: uuid.UUID, code: str
) -> None:
    with pytest.raises(DomainError) as err:
        approval.record_approval(request_, policy, principal, LATER)
    assert err.value.code == code
    expected = Forbidden if code in ("not_an_approver", "self_approval") else Conflict
    assert isinstance(err.value, expected)


def test_ok_reject_closes_with_comment() -> None:
    result = approval.reject(make_request(approvals=approved_by(A)), POLICY, B, LATER, "no")
    assert (result.state, result.comment) == (RequestState.REJECTED, "no")
    assert result.approvals[-1] == Approval(0, B, "rejected", "no", LATER)


@pytest.mark.parametrize(
    ("request_", "principal", "code"),
    [
        (make_request(), C, "not_an_approver"),
        (make_request(requester_id=A), A, "self_approval"),
        (make_request(state=RequestState.APPROVED), A, "request_closed"),
        (make_request(expires_at=NOW), A, "request_expired"),
    ],
    ids=["fail/not-an-approver", "fail/self", "fail/closed", "fail/expired"],
)
def test_reject_refused(request_: CertificateRequest, principal: uuid.UUID, code: str) -> None:
    with pytest.raises(DomainError) as err:
        approval.reject(request_, POLICY, principal, LATER, "no")
    assert err.value.code == code


@pytest.mark.parametrize(
    ("request_", "principal", "outcome"),
    [
        (make_request(), REQUESTER, RequestState.CANCELLED),
        (make_request(state=RequestState.APPROVED), REQUESTER, RequestState.CANCELLED),
        (make_request(), A, "not_requester"),
        (make_request(requester_id=None), A, "not_requester"),
        (make_request(state=RequestState.ISSUED), REQUESTER, "request_closed"),
        (make_request(expires_at=NOW), REQUESTER, "request_expired"),
    ],
    ids=[
        "ok/open",
        "ok/approved-not-yet-issued",
        "fail/not-requester",
        "fail/protocol-identity",
        "fail/issued",
        "fail/expired",
    ],
)
def test_cancel(
    request_: CertificateRequest, principal: uuid.UUID, outcome: RequestState | str
) -> None:
    if isinstance(outcome, RequestState):
        assert approval.cancel(request_, principal, LATER, "bye").state is outcome
        return
    with pytest.raises(DomainError) as err:
        approval.cancel(request_, principal, LATER)
    assert err.value.code == outcome


@pytest.mark.parametrize(
    ("request_", "expired"),
    [
        (make_request(expires_at=LATER), True),
        (make_request(expires_at=LATER + timedelta(seconds=1)), False),
        (make_request(state=RequestState.APPROVED, expires_at=NOW), False),
        (make_request(state=RequestState.REJECTED, expires_at=NOW), False),
    ],
    ids=["ok/due", "ok/not-yet", "ok/approved-never-expires", "ok/closed-stays"],
)
def test_expire_if_due(request_: CertificateRequest, expired: bool) -> None:
    result = approval.expire_if_due(request_, LATER)
    assert (result is not None) is expired
    if result is not None:
        assert result.state is RequestState.EXPIRED


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (RequestState.OPEN, {"open", "approved", "rejected", "cancelled", "expired"}),
        (RequestState.APPROVED, {"issued", "rejected", "cancelled"}),
        (RequestState.ISSUED, set()),
        (RequestState.REJECTED, set()),
        (RequestState.CANCELLED, set()),
        (RequestState.EXPIRED, set()),
    ],
    ids=lambda v: f"ok/{v}" if isinstance(v, RequestState) else "",
)
def test_transitions_follow_the_issue(state: RequestState, allowed: set[str]) -> None:
    assert {s.value for s in RequestState if approval.can_transition(state, s)} == allowed
    assert approval.is_final(state) is (not allowed)


def test_fail_issue_only_from_approved() -> None:
    with pytest.raises(Conflict) as err:
        approval.mark_issued(make_request(), uuid.uuid4(), LATER)
    assert err.value.code == "request_closed"
    done = approval.mark_issued(make_request(state=RequestState.APPROVED), C, LATER)
    assert (done.state, done.certificate_id) == (RequestState.ISSUED, C)


def test_ok_fingerprint_separates_requester_target_and_renewal() -> None:
    base = (APP.id, POLICY.profile_id, "principal:ops", b"csr")
    fp = approval.fingerprint(*base)
    assert fp == approval.fingerprint(*base) and len(fp) == 64
    assert fp != approval.fingerprint(APP.id, POLICY.profile_id, "principal:dev", b"csr")
    assert fp != approval.fingerprint(APP.id, uuid.uuid4(), "principal:ops", b"csr")
    assert fp != approval.fingerprint(*base, renewed_from=uuid.uuid4())
    # Length prefixes: moving bytes between fields changes the digest.
    assert approval.fingerprint(APP.id, POLICY.profile_id, "ab", b"c") != approval.fingerprint(
        APP.id, POLICY.profile_id, "a", b"bc"
    )


# --- the gate: decisions taken before any request is stored -------------------------------


class _Policies:
    def __init__(self, policy: ApprovalPolicy | None) -> None:
        self.policy = policy

    async def get_for(self, application_id: uuid.UUID, profile_id: uuid.UUID) -> Any:
        return self.policy

    async def get_legacy(self, profile_id: uuid.UUID) -> Any:
        # A legacy enrollment is held only by a legacy (project-level) policy.
        return self.policy if self.policy is not None and self.policy.legacy else None


class _Uow:
    def __init__(self, policy: ApprovalPolicy | None) -> None:
        self.approval_policies = _Policies(policy)


class _Transactions:
    def __init__(self, policy: ApprovalPolicy | None) -> None:
        self.policy = policy
        self.writes = 0

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        if not read_only:
            self.writes += 1
            raise AssertionError("the gate must not write when it lets a request through")
        yield _Uow(self.policy)

    async def cached(self, key: Any, load: Any) -> Any:
        async with self.transaction(read_only=True) as uow:
            return await load(uow)


class _Clock:
    def now(self) -> Any:
        return NOW


class _Events:
    async def publish(self, event: Any) -> None:
        raise AssertionError("nothing to publish")


def _enrollment(application: Application | None, requester_id: uuid.UUID | None) -> Any:
    return EnrollmentRequest(
        profile=make_profile(),
        application=application,
        csr=build_csr(),
        requester="principal:robot",
        method=EnrollmentMethod.API,
        requester_id=requester_id,
    )


def _gate(policy: ApprovalPolicy | None, resolve: Callable[..., Any] | None = None) -> Any:
    return approval.PolicyApprovalGate(
        _Transactions(policy), _Clock(), _Events(), resolve_requester=resolve
    )


@pytest.mark.parametrize(
    ("application", "policy", "requester_id"),
    [
        (None, POLICY, REQUESTER),
        (APP, None, REQUESTER),
        (APP, POLICY, ROBOT),
    ],
    ids=["ok/legacy-profile", "ok/no-policy", "ok/bypass"],
)
async def test_gate_lets_through(
    application: Application | None, policy: ApprovalPolicy | None, requester_id: uuid.UUID
) -> None:
    gate = _gate(policy)
    assert await gate.check(_enrollment(application, requester_id), None) is None


async def test_ok_gate_resolves_requester_name_for_bypass() -> None:
    async def resolve(name: str) -> uuid.UUID | None:
        return ROBOT if name == "principal:robot" else None

    gate = _gate(POLICY, resolve)
    assert await gate.check(_enrollment(APP, None), None) is None
