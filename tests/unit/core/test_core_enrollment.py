"""gateway.core.enrollment.EnrollmentService against in-memory fakes of its ports
(core_fakes): the flow of one enrollment (DESIGN.md) -- policy engine, approval, signer,
one storing transaction, events after commit -- and revocation."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from core_fakes import (
    FakeClock,
    FakeEvents,
    FakeRevocationListener,
    FakeSigner,
    FakeStore,
    FakeTransactions,
    as_fake,
    make_ca,
)
from core_helpers import DEMO_RULES, NOW, build_csr, make_profile, rules
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core import enrollment as enrollment_module
from gateway.core.approval import Decision, PolicyApprovalGate
from gateway.core.enrollment import (
    EnrollmentRequest,
    EnrollmentService,
    Issued,
    Pending,
    Resume,
)
from gateway.core.errors import (
    BadCSR,
    CAUnavailable,
    Conflict,
    DomainError,
    DuplicateSerial,
    InvalidInput,
    MethodNotEnabled,
    NotFound,
    PolicyDenied,
)
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    ApprovalStep,
    CAStatus,
    Certificate,
    CertificateRequest,
    CertificateStatus,
    EnrollmentMethod,
    NameRule,
    Policy,
    ProfileAttachment,
    RequestState,
    RevocationReason,
)
from gateway.core.ports import UnitOfWork
from gateway.core.template import CertificateTemplate

PROFILE = make_profile()
PROJECT_ID = PROFILE.project_id
APP = Application(uuid.UUID(int=10), PROJECT_ID, "payments", "Payments", "", NOW)
REQUESTER_ID = uuid.UUID(int=100)
APPROVER_ID = uuid.UUID(int=101)


class Hook:
    """A gateway.core.ports.InTransaction made of a plain coroutine function."""

    def __init__(self, fn: Callable[[UnitOfWork, Certificate], Awaitable[None]]) -> None:
        self._fn = fn

    async def certificate_stored(self, uow: UnitOfWork, certificate: Certificate) -> None:
        await self._fn(uow, certificate)


class ScriptedGate:
    """An ApprovalGate answering `decision`; records what it was asked."""

    def __init__(self, decision: Pending | Resume | None = None) -> None:
        self.decision = decision
        self.calls: list[tuple[EnrollmentRequest, CertificateTemplate]] = []

    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | Resume | None:
        self.calls.append((request, template))
        return self.decision


class World:
    """The demo-like configuration (one project, CA, policy, profile, application with the
    profile attached for API enrollment) in a FakeStore, and a service over the fakes."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.ca = make_ca(PROJECT_ID, PROFILE.ca_id)
        self.store.cas[self.ca.id] = self.ca
        self.store.policies[PROFILE.policy_id] = Policy(
            PROFILE.policy_id, PROJECT_ID, "demo", DEMO_RULES, NOW
        )
        self.store.profiles[PROFILE.id] = PROFILE
        self.store.applications[APP.id] = APP
        self.attach({"api": {"enabled": True}})
        self.tx = FakeTransactions(self.store)
        self.signer = FakeSigner(self.store)
        self.clock = FakeClock()
        self.events = FakeEvents(self.store)
        self.listener = FakeRevocationListener()
        self.gate: Any = ScriptedGate()  # ScriptedGate or PolicyApprovalGate

    def attach(self, methods: dict[str, dict[str, Any]]) -> None:
        self.store.attachments[(APP.id, PROFILE.id)] = ProfileAttachment(
            uuid.UUID(int=11), APP.id, PROFILE.id, methods, NOW
        )

    def set_ca(self, **changes: Any) -> None:
        self.store.cas[self.ca.id] = dataclasses.replace(self.ca, **changes)

    def set_rules(self, **changes: Any) -> None:
        policy = self.store.policies[PROFILE.policy_id]
        self.store.policies[policy.id] = dataclasses.replace(policy, rules=rules(**changes))

    def service(self) -> EnrollmentService:
        return EnrollmentService(
            self.tx,
            self.signer,
            self.clock,
            self.events,
            approvals=self.gate,
            revocation=self.listener,
        )

    def real_gate(self) -> PolicyApprovalGate:
        self.store.approval_policies[(APP.id, PROFILE.id)] = ApprovalPolicy(
            id=uuid.UUID(int=20),
            application_id=APP.id,
            profile_id=PROFILE.id,
            steps=(ApprovalStep((APPROVER_ID,), 1),),
            bypass=(),
            request_ttl_seconds=3600,
            created_at=NOW,
        )
        gate = PolicyApprovalGate(self.tx, self.clock, self.events)
        self.gate = gate
        return gate

    def assert_nothing_happened(self) -> None:
        """Nothing stored and nothing published (reads may have happened)."""
        assert self.store.writing_commits() == []
        assert self.store.certificates == {}
        assert self.store.audit == []
        assert self.events.published == []


def enrollment(
    csr: Any = None,
    *,
    application: Application | None = APP,
    method: EnrollmentMethod = EnrollmentMethod.API,
    **changes: Any,
) -> EnrollmentRequest:
    return EnrollmentRequest(
        profile=PROFILE,
        application=application,
        csr=build_csr() if csr is None else csr,
        requester="principal:ops",
        method=method,
        source_ip="192.0.2.1",
        requester_id=REQUESTER_ID,
        **changes,
    )


@pytest.fixture
def world() -> World:
    return World()


def _pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def _bad_signature_der() -> bytes:
    der = bytearray(_der(build_csr()))
    der[-1] ^= 0x01  # inside the signature BIT STRING: still parses, no longer verifies
    return bytes(der)


def assert_matches_csr(cert: Certificate, csr: x509.CertificateSigningRequest) -> None:
    """The stored certificate describes what was asked, and its PEM is what was signed."""
    parsed = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    assert format(parsed.serial_number, "x") == cert.serial
    assert parsed.subject == csr.subject
    assert parsed.subject.rfc4514_string() == cert.subject
    assert parsed.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    csr_sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cert_sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(cert_sans) == list(csr_sans)
    assert cert.sans == tuple(f"dns:{n}" for n in csr_sans.get_values_for_type(x509.DNSName))
    assert parsed.not_valid_before_utc == cert.not_before
    assert parsed.not_valid_after_utc == cert.not_after


# --- issuance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [lambda c: c, _pem, _der, lambda c: _pem(c).encode()],
    ids=["ok/issued-csr-object", "ok/issued-csr-pem", "ok/issued-csr-der", "ok/issued-pem-bytes"],
)
async def test_issued_stores_certificate_and_event_in_one_transaction(
    world: World, form: Callable[[x509.CertificateSigningRequest], Any]
) -> None:
    csr = build_csr(cn="web.localhost", sans=("dns:web.localhost", "dns:www.localhost"))
    result = await world.service().enroll(enrollment(form(csr)))

    assert isinstance(result, Issued)
    cert = result.certificate
    assert_matches_csr(cert, csr)
    assert cert.common_name == "web.localhost"
    assert cert.status is CertificateStatus.ACTIVE
    assert (cert.revoked_at, cert.revocation_reason, cert.renewed_from) == (None, None, None)
    assert (cert.project_id, cert.profile_id, cert.application_id, cert.ca_id) == (
        PROJECT_ID,
        PROFILE.id,
        APP.id,
        world.ca.id,
    )
    assert (cert.method, cert.requester) == (EnrollmentMethod.API, "principal:ops")
    assert cert.chain_pem == world.ca.full_chain_pem
    assert cert.created_at == world.clock.now()
    # The certificate the signer was given the template of is the one stored.
    assert len(world.signer.calls) == 1
    signed_ca, template = world.signer.calls[0]
    assert signed_ca == world.ca
    assert (template.not_before, template.not_after) == (cert.not_before, cert.not_after)

    # One writing transaction holds the certificate and its audit event.
    [commit] = world.store.writing_commits()
    assert commit.certificates == [cert]
    [event] = commit.audit
    assert world.store.certificates == {cert.id: cert}
    assert world.store.audit == [event]
    assert event.action == "certificate.issued"
    assert (event.target_type, event.target_id) == ("certificate", str(cert.id))
    assert (event.actor, event.source_ip) == ("principal:ops", "192.0.2.1")
    assert (event.project_id, event.application_id) == (PROJECT_ID, APP.id)
    assert event.details["serial"] == cert.serial
    assert event.details["sans"] == list(cert.sans)
    assert event.details["profile"] == PROFILE.slug
    assert event.details["method"] == EnrollmentMethod.API.value
    assert event.details["renewed_from"] is None

    # Published once, the same event, after its commit and outside any transaction.
    [published] = world.events.published
    assert published.event == event
    assert published.committed and published.open_transactions == 0
    log = world.store.log
    assert log.index("commit:write") < log.index("publish:certificate.issued")


async def test_ok_signing_holds_no_transaction(world: World) -> None:
    await world.service().enroll(enrollment())
    assert world.signer.inside_transaction == [False]


async def test_ok_configuration_is_read_through_the_cache(world: World) -> None:
    await world.service().enroll(enrollment())
    assert len(world.tx.cached_keys) == 1
    # Keyed by everything it reads, so a different application or profile is a new entry.
    cached_key = world.tx.cached_keys[0]
    assert isinstance(cached_key, tuple)
    assert {PROFILE.id, PROFILE.ca_id, PROFILE.policy_id, APP.id} <= set(cached_key)
    # Configuration reads take no write transaction; the only one is the storing one.
    assert world.store.log.count("begin:write") == 1


async def test_ok_gate_gets_the_parsed_csr_and_the_template(world: World) -> None:
    csr = build_csr()
    await world.service().enroll(enrollment(_pem(csr)))
    [(asked, template)] = world.gate.calls
    assert isinstance(asked.csr, x509.CertificateSigningRequest)
    assert _der(asked.csr) == _der(csr)
    assert template is world.signer.calls[0][1]


async def test_ok_legacy_profile_needs_no_attachment(world: World) -> None:
    world.store.attachments.clear()
    result = await world.service().enroll(enrollment(application=None))
    assert isinstance(result, Issued)
    assert result.certificate.application_id is None
    [commit] = world.store.writing_commits()
    assert commit.audit[0].application_id is None
    assert len(world.events.published) == 1


@pytest.mark.parametrize(
    ("method", "methods"),
    [
        (EnrollmentMethod.ACME, {"api": {"enabled": True}, "acme": {"enabled": True}}),
        (EnrollmentMethod.EST, {"est": {"enabled": True}}),
        (EnrollmentMethod.SCEP, {"scep": {"enabled": True, "other": 1}}),
    ],
    ids=["ok/acme-enabled", "ok/est-enabled", "ok/scep-enabled"],
)
async def test_ok_enabled_method_is_recorded(
    world: World, method: EnrollmentMethod, methods: dict[str, dict[str, Any]]
) -> None:
    world.attach(methods)
    result = await world.service().enroll(enrollment(method=method))
    assert isinstance(result, Issued)
    assert result.certificate.method is method
    assert world.store.audit[0].details["method"] == method.value


# --- refusals: nothing signed, stored or published ------------------------------------------


def _deny_names(w: World) -> None:
    w.set_rules(dns=NameRule(allow=("*.example.com",)))


FAILURES: list[Any] = [
    pytest.param(
        lambda w: None,
        {"csr": build_csr(cn="evil.com", sans=("dns:evil.com",))},
        PolicyDenied,
        id="fail/policy-denied",
    ),
    pytest.param(_deny_names, {}, PolicyDenied, id="fail/policy-denied-after-policy-change"),
    pytest.param(
        lambda w: None,
        {"requested_validity_days": DEMO_RULES.max_validity_days + 1},
        PolicyDenied,
        id="fail/policy-denied-validity",
    ),
    pytest.param(
        lambda w: w.attach({"api": {"enabled": False}, "acme": {"enabled": True}}),
        {},
        MethodNotEnabled,
        id="fail/method-disabled",
    ),
    pytest.param(
        lambda w: None,
        {"method": EnrollmentMethod.SCEP},
        MethodNotEnabled,
        id="fail/method-not-configured",
    ),
    pytest.param(
        lambda w: w.store.attachments.clear(), {}, NotFound, id="fail/profile-not-attached"
    ),
    pytest.param(
        lambda w: None,
        {"application": dataclasses.replace(APP, project_id=uuid.UUID(int=99))},
        NotFound,
        id="fail/application-of-another-project",
    ),
    pytest.param(
        lambda w: w.set_ca(status=CAStatus.DISABLED), {}, CAUnavailable, id="fail/ca-disabled"
    ),
    pytest.param(
        lambda w: w.set_ca(not_after=NOW - timedelta(seconds=1)),
        {},
        CAUnavailable,
        id="fail/ca-expired",
    ),
    pytest.param(lambda w: w.store.cas.clear(), {}, CAUnavailable, id="fail/ca-missing"),
    pytest.param(lambda w: w.store.policies.clear(), {}, CAUnavailable, id="fail/policy-missing"),
    pytest.param(lambda w: None, {"csr": b"not a csr"}, BadCSR, id="fail/bad-csr-garbage"),
    pytest.param(lambda w: None, {"csr": ""}, BadCSR, id="fail/bad-csr-empty"),
    pytest.param(
        lambda w: None, {"csr": _bad_signature_der()}, BadCSR, id="fail/bad-csr-signature"
    ),
    pytest.param(
        lambda w: None,
        {"csr": x509.load_der_x509_csr(_bad_signature_der())},
        BadCSR,
        id="fail/bad-csr-signature-parsed-by-front-end",
    ),
]


@pytest.mark.parametrize(("setup", "changes", "error"), FAILURES)
async def test_refused_enrollment_stores_and_publishes_nothing(
    world: World,
    setup: Callable[[World], None],
    changes: dict[str, Any],
    error: type[DomainError],
) -> None:
    setup(world)
    hook_calls: list[Certificate] = []

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        hook_calls.append(cert)

    with pytest.raises(error) as info:
        await world.service().enroll(enrollment(**changes), also=Hook(also))

    assert isinstance(info.value, DomainError)
    assert info.value.code == error.code
    assert info.value.message
    world.assert_nothing_happened()
    assert world.signer.calls == []
    assert world.gate.calls == []  # refused before approval is consulted
    assert hook_calls == []


async def test_fail_policy_denied_lists_every_violation(world: World) -> None:
    csr = build_csr(cn="evil.com", sans=("dns:evil.com", "dns:worse.com"))
    with pytest.raises(PolicyDenied) as info:
        await world.service().enroll(enrollment(csr))
    assert {v.identifier for v in info.value.violations} >= {"evil.com", "worse.com"}


async def test_fail_method_not_enabled_names_method_and_target(world: World) -> None:
    world.attach({"api": {"enabled": False}})
    with pytest.raises(MethodNotEnabled) as info:
        await world.service().enroll(enrollment())
    assert "API" in info.value.message
    assert f"{APP.slug}/{PROFILE.slug}" in info.value.message


async def test_fail_signer_error_stores_nothing(world: World) -> None:
    world.signer.fail = CAUnavailable("the CA key cannot be unwrapped")
    with pytest.raises(CAUnavailable):
        await world.service().enroll(enrollment())
    world.assert_nothing_happened()


# --- approval: pending and resume ----------------------------------------------------------


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
        csr_pem=_pem(csr),
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
    _deny_names(world)

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
    _deny_names(world)

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
    winner = await _issued(World())  # a certificate the other process stored
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
    assert await service.enroll(enrollment(_pem(csr))) == pending
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


# --- duplicate serials ----------------------------------------------------------------------


async def test_duplicate_serial_is_re_signed_and_stored_once(world: World) -> None:
    taken = await world.service().enroll(enrollment(build_csr(cn="first.localhost")))
    assert isinstance(taken, Issued)
    taken_serial = int(taken.certificate.serial, 16)
    world.signer.serials = iter([taken_serial, taken_serial + 1])
    commits_before = len(world.store.writing_commits())
    hook_calls: list[Certificate] = []

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        hook_calls.append(cert)

    result = await world.service().enroll(enrollment(), also=Hook(also))

    assert isinstance(result, Issued)
    assert int(result.certificate.serial, 16) == taken_serial + 1
    assert len(world.signer.calls) == 3  # one for `taken`, two for this enrollment
    assert len(world.store.writing_commits()) == commits_before + 1
    assert len(world.store.certificates) == 2
    assert hook_calls == [result.certificate]
    issued = [e for e in world.store.audit if e.target_id == str(result.certificate.id)]
    assert len(issued) == 1
    assert [p.event for p in world.events.published][-1] == issued[0]
    assert len(world.events.published) == 2


async def test_fail_duplicate_serial_every_time_gives_up(world: World) -> None:
    taken = await world.service().enroll(enrollment(build_csr(cn="first.localhost")))
    assert isinstance(taken, Issued)
    serial = int(taken.certificate.serial, 16)
    world.signer.serials = iter([serial] * 100)
    before = (dict(world.store.certificates), list(world.store.audit))
    published = len(world.events.published)

    with pytest.raises(DuplicateSerial):
        await world.service().enroll(enrollment())

    assert len(world.signer.calls) == 1 + enrollment_module._SERIAL_ATTEMPTS
    assert (world.store.certificates, world.store.audit) == before
    assert len(world.events.published) == published


# --- the `also` hook --------------------------------------------------------------------------


async def test_also_runs_inside_the_storing_transaction(world: World) -> None:
    seen: list[tuple[bool, bool, Certificate | None, bool]] = []

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        uow = as_fake(port)
        seen.append(
            (
                uow.open,
                uow.read_only,
                await uow.certificates.get(cert.id),
                cert.id in world.store.certificates,
            )
        )
        uow.stage(("order", cert.id))

    result = await world.service().enroll(enrollment(), also=Hook(also))

    assert isinstance(result, Issued)
    cert = result.certificate
    # Open and writable, sees the staged certificate, which is not committed yet.
    assert seen == [(True, False, cert, False)]
    [commit] = world.store.writing_commits()
    assert commit.certificates == [cert]
    assert len(commit.audit) == 1
    assert commit.extra == [("order", cert.id)]
    assert world.events.published[0].committed


async def test_fail_raise_in_also_stores_nothing(world: World) -> None:
    class Boom(Exception):
        pass

    async def also(port: UnitOfWork, cert: Certificate) -> None:
        as_fake(port).stage(("order", cert.id))
        raise Boom

    with pytest.raises(Boom):
        await world.service().enroll(enrollment(), also=Hook(also))

    world.assert_nothing_happened()
    assert world.store.extra == []
    assert "rollback:write" in world.store.log


# --- renewal ----------------------------------------------------------------------------------


async def test_renewal_records_renewed_from(world: World) -> None:
    service = world.service()
    old = await service.enroll(enrollment())
    assert isinstance(old, Issued)

    new = await service.enroll(enrollment(renewed_from=old.certificate.id))

    assert isinstance(new, Issued)
    assert new.certificate.id != old.certificate.id
    assert new.certificate.serial != old.certificate.serial
    assert new.certificate.renewed_from == old.certificate.id
    event = world.store.writing_commits()[-1].audit[0]
    assert event.action == "certificate.renewed"
    assert event.details["renewed_from"] == str(old.certificate.id)
    assert world.events.events()[-1] == event
    # Renewal leaves the old certificate as it was.
    assert world.store.certificates[old.certificate.id] == old.certificate


# --- revocation -------------------------------------------------------------------------------


async def _issued(world: World) -> Certificate:
    result = await world.service().enroll(enrollment())
    assert isinstance(result, Issued)
    return result.certificate


async def test_revoke_calls_the_listener_inside_the_revoking_transaction(world: World) -> None:
    cert = await _issued(world)
    world.clock.advance(timedelta(days=3))
    commits = len(world.store.writing_commits())

    revoked = await world.service().revoke(
        cert.id, RevocationReason.KEY_COMPROMISE, actor="principal:ops", source_ip="192.0.2.9"
    )

    assert revoked.id == cert.id
    assert revoked.status is CertificateStatus.REVOKED
    assert revoked.revoked_at == world.clock.now()
    assert revoked.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert world.store.certificates[cert.id] == revoked
    # The listener ran in the open, writable transaction, saw the revocation there, and
    # ran before it was committed; what it wrote commits with it.
    [call] = world.listener.calls
    assert call.certificate == revoked
    assert (call.uow_open, call.uow_read_only) == (True, False)
    assert call.seen_in_uow == revoked
    assert call.committed_status is CertificateStatus.ACTIVE
    [commit] = world.store.writing_commits()[commits:]
    assert commit.certificates == [revoked]
    assert commit.extra == [("crl", cert.ca_id, cert.serial)]
    [event] = commit.audit
    assert event.action == "certificate.revoked"
    assert (event.target_id, event.actor, event.source_ip) == (
        str(cert.id),
        "principal:ops",
        "192.0.2.9",
    )
    assert event.details == {"serial": cert.serial, "reason": "key_compromise"}
    published = world.events.published[-1]
    assert published.event == event
    assert published.committed and published.open_transactions == 0


async def test_fail_revoking_twice(world: World) -> None:
    cert = await _issued(world)
    service = world.service()
    first = await service.revoke(cert.id, RevocationReason.SUPERSEDED, actor="a")
    commits, published = len(world.store.writing_commits()), len(world.events.published)

    with pytest.raises(Conflict) as info:
        await service.revoke(cert.id, RevocationReason.KEY_COMPROMISE, actor="a")

    assert info.value.code == "already_revoked"
    assert world.store.certificates[cert.id] == first  # the first reason and time stand
    assert len(world.listener.calls) == 1
    assert len(world.store.writing_commits()) == commits
    assert len(world.events.published) == published


@pytest.mark.parametrize(
    ("which", "application_id", "reason", "error"),
    [
        ("unknown", None, RevocationReason.UNSPECIFIED, NotFound),
        ("issued", uuid.UUID(int=77), RevocationReason.UNSPECIFIED, NotFound),
        ("issued", APP.id, RevocationReason.CERTIFICATE_HOLD, InvalidInput),
    ],
    ids=["fail/revoke-unknown", "fail/revoke-other-application", "fail/revoke-hold"],
)
async def test_refused_revocation_stores_nothing(
    world: World,
    which: str,
    application_id: uuid.UUID | None,
    reason: RevocationReason,
    error: type,
) -> None:
    cert = await _issued(world)
    target = cert.id if which == "issued" else uuid.uuid4()
    commits, published = len(world.store.writing_commits()), len(world.events.published)

    with pytest.raises(error):
        await world.service().revoke(target, reason, actor="a", application_id=application_id)

    assert world.store.certificates[cert.id] == cert
    assert world.listener.calls == []
    assert len(world.store.writing_commits()) == commits
    assert len(world.events.published) == published


async def test_ok_revoke_within_the_certificates_application(world: World) -> None:
    cert = await _issued(world)
    revoked = await world.service().revoke(
        cert.id, RevocationReason.UNSPECIFIED, actor="a", application_id=APP.id
    )
    assert revoked.status is CertificateStatus.REVOKED


async def test_fail_raise_in_listener_revokes_nothing(world: World) -> None:
    cert = await _issued(world)
    world.listener.fail = RuntimeError("CRL could not be rebuilt")
    commits, published = len(world.store.writing_commits()), len(world.events.published)

    with pytest.raises(RuntimeError):
        await world.service().revoke(cert.id, RevocationReason.KEY_COMPROMISE, actor="a")

    assert world.store.certificates[cert.id] == cert
    assert world.store.extra == []
    assert len(world.store.writing_commits()) == commits
    assert len(world.events.published) == published


async def test_ok_revoke_without_a_listener(world: World) -> None:
    cert = await _issued(world)
    service = EnrollmentService(world.tx, world.signer, world.clock, world.events)
    revoked = await service.revoke(cert.id, RevocationReason.KEY_COMPROMISE, actor="a")
    assert world.store.certificates[cert.id] == revoked
    assert world.store.audit_actions()[-1] == "certificate.revoked"
