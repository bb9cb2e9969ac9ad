"""gateway.core.enrollment.EnrollmentService against in-memory fakes of its ports
(core_fakes, core_world): the flow of one enrollment (DESIGN.md) -- policy engine, signer,
one storing transaction, events after commit --, the refusals that store nothing,
duplicate serials, the `also` hook and renewal. Approval: test_core_enrollment_approval.py;
revocation: test_core_revocation.py."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from core_fakes import as_fake
from core_helpers import DEMO_RULES, NOW, build_csr
from core_world import (
    APP,
    PROFILE,
    PROJECT_ID,
    Hook,
    World,
    assert_matches_csr,
    deny_names,
    enrollment,
    to_der,
    to_pem,
)
from cryptography import x509

from gateway.core import enrollment as enrollment_module
from gateway.core.enrollment import Issued
from gateway.core.errors import (
    BadCSR,
    CAUnavailable,
    DomainError,
    DuplicateSerial,
    MethodNotEnabled,
    NotFound,
    PolicyDenied,
)
from gateway.core.model import CAStatus, Certificate, CertificateStatus, EnrollmentMethod
from gateway.core.ports import UnitOfWork


def _bad_signature_der() -> bytes:
    der = bytearray(to_der(build_csr()))
    der[-1] ^= 0x01  # inside the signature BIT STRING: still parses, no longer verifies
    return bytes(der)


# --- issuance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [lambda c: c, to_pem, to_der, lambda c: to_pem(c).encode()],
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
    await world.service().enroll(enrollment(to_pem(csr)))
    [(asked, template)] = world.gate.calls
    assert isinstance(asked.csr, x509.CertificateSigningRequest)
    assert to_der(asked.csr) == to_der(csr)
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


FAILURES: list[Any] = [
    pytest.param(
        lambda w: None,
        {"csr": build_csr(cn="evil.com", sans=("dns:evil.com",))},
        PolicyDenied,
        id="fail/policy-denied",
    ),
    pytest.param(deny_names, {}, PolicyDenied, id="fail/policy-denied-after-policy-change"),
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
