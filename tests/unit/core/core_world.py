"""The world the EnrollmentService unit tests run in: a demo-like configuration (project,
CA, policy, profile, application with the profile attached) in core_fakes' FakeStore, a
service over the fakes, and helpers to build requests and check what was issued."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from core_fakes import (
    FakeClock,
    FakeEvents,
    FakeRevocationListener,
    FakeSigner,
    FakeStore,
    FakeTransactions,
    make_ca,
)
from core_helpers import DEMO_RULES, NOW, build_csr, make_profile, rules
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.approval import PolicyApprovalGate
from gateway.core.enrollment import EnrollmentRequest, EnrollmentService, Issued, Pending, Resume
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    ApprovalStep,
    Certificate,
    EnrollmentMethod,
    NameRule,
    Policy,
    ProfileAttachment,
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


def to_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def to_der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


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


def deny_names(w: World) -> None:
    w.set_rules(dns=NameRule(allow=("*.example.com",)))


async def issue_one(world: World) -> Certificate:
    result = await world.service().enroll(enrollment())
    assert isinstance(result, Issued)
    return result.certificate
