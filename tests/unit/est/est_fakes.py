"""Shared pieces of the EST unit tests: throwaway certificates, a profile, an attached
target, and a fake EstBackend (ports are Protocols; fakes implement them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.approval import Pending
from gateway.core.est import EstSettings
from gateway.core.methods import AcmeSettings, ApiSettings, MethodSettings, ScepSettings
from gateway.core.model import (
    Application,
    KeyType,
    PolicyRules,
    Profile,
    ProfileAttachment,
    Project,
    ProjectStatus,
)
from gateway.core.target import AttachedTarget, EnrollmentTarget

NOW = datetime.now(UTC)


def make_cert(
    cn: str, issuer: tuple[x509.Certificate, Any] | None = None, ca: bool = False, days: int = 5
) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_name, signer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    return builder.sign(signer_key, hashes.SHA256()), key


class FakeBackend:
    """Implements gateway.core.est.EstBackend, with pending approval."""

    def __init__(self, target: EnrollmentTarget) -> None:
        self.target = target

    async def resolve(self, application: str, profile: str) -> EnrollmentTarget:
        return self.target

    async def resolve_legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget:
        return self.target

    async def has_password(self, target: EnrollmentTarget) -> bool:
        return True

    async def ca_certificates(self, target: EnrollmentTarget) -> list[x509.Certificate]:
        return []

    async def check_password(self, target: EnrollmentTarget, username: str, password: str) -> bool:
        return password == "correct-horse"

    async def current_certificate(self, target: EnrollmentTarget, cert: x509.Certificate) -> Any:
        raise AssertionError("not used")

    async def enrollment_cert_problem(
        self, target: EnrollmentTarget, cert: x509.Certificate
    ) -> str:
        return "no"

    async def policy(self, target: EnrollmentTarget) -> PolicyRules:
        return PolicyRules(key_algorithms=())

    async def enroll(self, request: Any) -> Pending:
        return Pending(uuid.UUID(int=7), 42)

    async def server_keygen(self, target: EnrollmentTarget, request: Any) -> tuple[Pending, None]:
        return Pending(uuid.UUID(int=8), 42), None


def make_profile() -> Profile:
    return Profile(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        slug="p",
        name="p",
        ca_id=uuid.uuid4(),
        policy_id=uuid.uuid4(),
        validity_days=1,
        key_usages=(),
        extended_key_usages=(),
        renew_before_days=1,
        default_key_type=KeyType.EC_P256,
        enrollment={},
        created_at=NOW,
    )


def enrollment_target(profile: Profile, settings: EstSettings) -> AttachedTarget:
    """Application "a", its attached profile (EST label "a.p" for profile slug "p")."""
    project = Project(uuid.uuid4(), uuid.uuid4(), "proj", ProjectStatus.ACTIVE, b"", NOW)
    app = Application(uuid.uuid4(), project.id, "a", "a", "", NOW)
    attachment = ProfileAttachment(uuid.uuid4(), app.id, profile.id, {}, NOW)
    methods = MethodSettings(ApiSettings(), AcmeSettings(), settings, ScepSettings())
    return AttachedTarget(project, app, profile, attachment, None, None, methods)
