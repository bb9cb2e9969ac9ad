"""Pure pieces of EST: settings, chain checks, wire formats, and the handler's pending and
empty-csrattrs forms against a fake backend (ports are Protocols; fakes implement them)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.approval import Pending
from gateway.core.errors import InvalidInput
from gateway.core.est import EstAuth, EstSettings, chain_problem, est_label
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
from protocols.est import wire
from protocols.est.auth import parse_networks
from protocols.est.handlers import EstContext, EstHandlers
from protocols.est.settings import attachment_owner, profile_owner, target_owner

NOW = datetime.now(UTC)


def _cert(
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


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({}, None, id="ok/defaults"),
        pytest.param({"accepted_auth": ["basic"], "required_auth": ["basic"]}, None, id="ok/req"),
        pytest.param({"accepted_auth": []}, "at least one", id="fail/no-methods"),
        pytest.param({"accepted_auth": ["magic"]}, "unknown method", id="fail/unknown"),
        pytest.param(
            {"accepted_auth": ["basic"], "required_auth": ["client_cert"]},
            "also be in accepted_auth",
            id="fail/required-not-accepted",
        ),
        pytest.param({"username": "a:b"}, "without ':'", id="fail/username"),
        pytest.param({"enabled": "yes"}, "booleans", id="fail/enabled"),
        pytest.param({"bootstrap_ca_pem": "junk"}, "no valid PEM", id="fail/bundle"),
    ],
)
def test_settings_from_dict(data: dict[str, Any], error: str | None) -> None:
    if error is None:
        settings = EstSettings.from_dict(data)
        assert EstSettings.from_dict(settings.to_dict()) == settings
    else:
        with pytest.raises(InvalidInput, match=error):
            EstSettings.from_dict(data)


def test_fail_bundle_with_leaf_certificate() -> None:
    leaf, _ = _cert("leaf")
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(InvalidInput, match="is not a CA certificate"):
        EstSettings.from_dict({"bootstrap_ca_pem": pem})


def test_chain_problem() -> None:
    root = _cert("root", ca=True, days=100)
    other = _cert("other", ca=True, days=100)
    leaf, _ = _cert("device", issuer=root)
    expired, _ = _cert("old", issuer=root, days=-1)
    assert chain_problem(leaf, [other[0], root[0]], NOW) is None
    assert "not issued by a configured bootstrap CA" in (chain_problem(leaf, [other[0]], NOW) or "")
    assert "expired" in (chain_problem(expired, [root[0]], NOW) or "")
    assert "no bootstrap CA" in (chain_problem(leaf, [], NOW) or "")


def test_certs_only_roundtrip() -> None:
    a, _ = _cert("a")
    b, _ = _cert("b")
    info = cms.ContentInfo.load(wire.certs_only([a, b]))
    signed = info["content"]
    assert info["content_type"].native == "signed_data"
    assert len(signed["signer_infos"]) == 0
    assert len(signed["certificates"]) == 2


def test_b64_lines_are_64_wide() -> None:
    text = wire.b64_lines(b"x" * 300)
    lines = text.split(b"\r\n")
    assert all(len(line) <= 64 for line in lines)
    assert base64.b64decode(b"".join(lines)) == b"x" * 300


def test_csrattrs_encoding() -> None:
    attrs = wire.CsrAttrs()
    assert not attrs
    attrs.oid(wire.OID_CHALLENGE_PASSWORD)
    attrs.attribute(wire.OID_EC_PUBLIC_KEY, [wire.oid_der(wire.CURVE_OIDS["P-384"])])
    seq = core.Sequence.load(attrs.der())
    assert seq.dump()[0] == 0x30
    assert wire.oid_der("1.3.132.0.34") in attrs.der()


def test_multipart_has_key_then_cert() -> None:
    body, content_type = wire.multipart_keygen(b"KEY", b"CMS")
    boundary = content_type.split('boundary="')[1].rstrip('"')
    text = body.decode()
    assert text.index("application/pkcs8") < text.index("application/pkcs7-mime")
    assert text.endswith(f"--{boundary}--\r\n")


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


def _profile() -> Profile:
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


def test_est_label_and_owner_strings() -> None:
    """The realm label is the one-segment URL form; the secrets' owners stay the strings
    stored rows carry."""
    target = enrollment_target(_profile(), EstSettings(enabled=True))
    assert est_label(target) == "a.p"
    assert target_owner(target) == attachment_owner(target.attachment.id)
    assert target_owner(target) == f"attachment:{target.attachment.id}:est"
    legacy = EnrollmentTarget(
        target.project, None, target.profile, None, None, None, target.methods
    )
    assert est_label(legacy) == str(target.profile.id)
    assert target_owner(legacy) == profile_owner(target.profile.id)
    assert target_owner(legacy) == f"profile:{target.profile.id}:est"


@pytest.fixture
async def fake_client(aiohttp_client: Any) -> Any:
    settings = EstSettings(enabled=True, accepted=(EstAuth.BASIC,))
    target = enrollment_target(_profile(), settings)
    # Plain HTTP from a trusted proxy stands in for TLS here.
    ctx = EstContext(FakeBackend(target), trusted_proxies=parse_networks(["127.0.0.1", "::1"]))
    app = web.Application()
    for spec in EstHandlers(lambda request: ctx).routes():
        app.router.add_route(spec.method, spec.path, spec.handler, name=spec.name)
    return await aiohttp_client(app)


async def test_pending_is_202_with_retry_after(fake_client: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d.example.com")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    headers = {
        "Content-Type": "application/pkcs10",
        "Authorization": "Basic " + base64.b64encode(b"est:correct-horse").decode(),
    }
    for op in ("simpleenroll", "serverkeygen"):
        resp = await fake_client.post(
            f"/.well-known/est/a.p/{op}", data=base64.b64encode(csr), headers=headers
        )
        assert resp.status == 202
        assert resp.headers["Retry-After"] == "42"
        assert "awaits approval" in await resp.text()


async def test_csrattrs_204_when_nothing_to_ask(fake_client: Any) -> None:
    resp = await fake_client.get("/.well-known/est/a.p/csrattrs")
    assert resp.status == 204
