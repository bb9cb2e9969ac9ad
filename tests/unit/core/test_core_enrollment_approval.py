"""EnrollmentService under approval (gateway.core.enrollment with core_fakes): a pending
request issues nothing; an approved one resumes, judged again first, once, even when
completed concurrently; the whole flow through PolicyApprovalGate."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from core_helpers import DEMO_RULES, NOW, build_csr
from core_world import (
    APP,
    APPROVER_ID,
    PROFILE,
    REQUESTER_ID,
    Hook,
    ScriptedGate,
    World,
    assert_matches_csr,
    deny_names,
    enrollment,
    issue_one,
    to_pem,
)
from cryptography import x509

from gateway.core.approval import Decision
from gateway.core.enrollment import Issued, Pending, Resume
from gateway.core.errors import CAUnavailable, Conflict, PolicyDenied
from gateway.core.model import (
    CAStatus,
    Certificate,
    CertificateRequest,
    EnrollmentMethod,
    RequestState,
)
from gateway.core.ports import UnitOfWork


async def test_pending_issues_nothing(world: World) -> None:
    pending = Pending(uuid.uuid4(), 60)
    world.gate = ScriptedGate(pending)
    hook_calls: list[Certificate] = []

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        hook_calls.append(cert)

    result = await world.service().enroll(enrollment(), also=Hook(also))

    assert result == pending
    assert world.signer.calls == []
    assert hook_calls == []
    world.assert_nothing_happened()


def _approved_request_world(world: World, csr: x509.CertificateSigningRequest) -> uuid.UUID:
    """A stored, approved request for `csr` (as PolicyApprovalGate + approve leave it), with
    the ScriptedGate resuming it."""
    request_id = uuid.UUID(int=500)
    world.store.requests[request_id] = CertificateRequest(
        id=request_id,
        application_id=APP.id,
        profile_id=PROFILE.id,
        csr_pem=to_pem(csr),
        fingerprint="f" * 64,
        requester="principal:ops",
        requester_id=REQUESTER_ID,
        method=EnrollmentMethod.API,
        state=RequestState.APPROVED,
        step=1,
        approvals=(),
        requested_validity_days=None,
        renewed_from=None,
        certificate_id=None,
        comment="",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        updated_at=NOW,
    )
    world.gate = ScriptedGate(Resume(request_id, 60))
    return request_id


async def test_resume_issues_the_approved_request(world: World) -> None:
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    hook_calls: list[Certificate] = []

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        hook_calls.append(cert)

    result = await world.service().enroll(enrollment(csr), also=Hook(also))

    assert isinstance(result, Issued)
    cert = result.certificate
    assert_matches_csr(cert, csr)
    # The request moves to issued in the same transaction that stores its certificate.
    [commit] = world.store.writing_commits()
    assert commit.certificates == [cert]
    [moved] = commit.requests
    assert (moved.id, moved.state, moved.certificate_id) == (
        request_id,
        RequestState.ISSUED,
        cert.id,
    )
    [event] = commit.audit
    assert event.action == "certificate.issued"
    assert event.details["request_id"] == str(request_id)
    [published] = world.events.published
    assert published.event == event and published.committed
    assert published.open_transactions == 0
    # `also` is documented not to run when an approved request is finished instead.
    assert hook_calls == []


async def test_resume_of_an_issued_request_hands_out_its_certificate(world: World) -> None:
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    service = world.service()
    first = await service.enroll(enrollment(csr))
    published = len(world.events.published)

    again = await service.enroll(enrollment(csr))

    assert isinstance(first, Issued) and isinstance(again, Issued)
    assert again.certificate == first.certificate
    assert world.store.requests[request_id].state is RequestState.ISSUED
    assert len(world.signer.calls) == 1
    assert len(world.store.writing_commits()) == 1
    assert len(world.events.published) == published


async def test_fail_resume_judges_the_new_request_first(world: World) -> None:
    """The incoming request is judged before the gate: a policy that changed since the
    approval denies it outright, and the stored request is left to its own issuance."""
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    deny_names(world)

    with pytest.raises(PolicyDenied):
        await world.service().enroll(enrollment(csr))

    assert world.gate.calls == []
    assert world.store.requests[request_id].state is RequestState.APPROVED
    world.assert_nothing_happened()


async def test_fail_issuing_an_approved_request_under_a_changed_policy_rejects_it(
    world: World,
) -> None:
    """_complete re-judges the stored CSR (reached here through fetch_request, the poll)."""
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    deny_names(world)

    current, cert = await world.service().fetch_request(request_id)

    assert cert is None
    assert current.state is RequestState.REJECTED
    assert current.comment
    assert world.store.requests[request_id] == current
    assert world.store.certificates == {}
    assert world.signer.calls == []
    [commit] = world.store.writing_commits()
    assert commit.requests == [current]
    [event] = commit.audit
    assert event.action == "request.rejected"
    assert event.details["reason"] == PolicyDenied.code
    assert world.events.events() == [event]

    # The gate would now resume a rejected request: enroll reports the rejection.
    _deny_names_undo(world)
    with pytest.raises(Conflict) as info:
        await world.service().enroll(enrollment(csr))
    assert info.value.code == "request_rejected"
    assert current.comment in info.value.message
    assert world.store.certificates == {}


def _deny_names_undo(w: World) -> None:
    w.set_rules(dns=DEMO_RULES.dns)


async def test_resume_with_the_ca_disabled_keeps_the_request_approved(world: World) -> None:
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    world.set_ca(status=CAStatus.DISABLED)

    with pytest.raises(CAUnavailable):
        await world.service().enroll(enrollment(csr))
    current, cert = await world.service().fetch_request(request_id)

    assert cert is None
    assert current.state is RequestState.APPROVED
    assert world.store.requests[request_id].state is RequestState.APPROVED
    world.assert_nothing_happened()


async def test_resume_completed_concurrently_stores_only_the_winner(world: World) -> None:
    """Another process issues the approved request while this one signs: this one's
    certificate is not stored, and the winner's is handed out."""
    csr = build_csr()
    request_id = _approved_request_world(world, csr)
    winner = await issue_one(World())  # a certificate the other process stored
    winner = dataclasses.replace(winner, serial="ab" * 8)

    def other_process_completes() -> None:
        world.signer.on_issue = None
        approved = world.store.requests[request_id]
        world.store.certificates[winner.id] = winner
        world.store.requests[request_id] = dataclasses.replace(
            approved,
            state=RequestState.ISSUED,
            certificate_id=winner.id,
            version=approved.version + 1,
        )

    world.signer.on_issue = other_process_completes

    result = await world.service().enroll(enrollment(csr))

    assert result == Issued(winner)
    assert list(world.store.certificates) == [winner.id]
    assert len(world.signer.calls) == 1
    assert world.store.writing_commits() == []
    assert "rollback:write" in world.store.log
    assert world.events.published == []


async def test_approval_flow_with_the_policy_gate(world: World) -> None:
    """Pending -> approved (CA down, stays approved) -> identical request resumes it."""
    world.real_gate()
    service = world.service()
    csr = build_csr()

    pending = await service.enroll(enrollment(csr))
    assert isinstance(pending, Pending)
    assert world.store.certificates == {}
    assert world.signer.calls == []
    assert world.store.requests[pending.request_id].state is RequestState.OPEN

    # Asking again while open joins the same request.
    assert await service.enroll(enrollment(to_pem(csr))) == pending
    assert len(world.store.requests) == 1

    world.set_ca(status=CAStatus.DISABLED)
    approved = await service.decide(
        pending.request_id, Decision.APPROVE, APPROVER_ID, actor="principal:boss"
    )
    assert approved.state is RequestState.APPROVED
    assert world.store.certificates == {}

    world.set_ca(status=CAStatus.ACTIVE)
    result = await service.enroll(enrollment(csr))
    assert isinstance(result, Issued)
    stored = world.store.requests[pending.request_id]
    assert (stored.state, stored.certificate_id) == (RequestState.ISSUED, result.certificate.id)
    assert list(world.store.certificates) == [result.certificate.id]
    issued_events = [e for e in world.store.audit if e.action == "certificate.issued"]
    assert [e.details["request_id"] for e in issued_events] == [str(pending.request_id)]
