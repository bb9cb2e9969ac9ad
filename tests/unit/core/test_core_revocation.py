"""EnrollmentService.revoke against in-memory fakes (core_fakes): the revocation listener
inside the revoking transaction, refused revocations storing nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from core_world import APP, World, issue_one

from gateway.core.enrollment import EnrollmentService
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.model import CertificateStatus, RevocationReason


async def test_revoke_calls_the_listener_inside_the_revoking_transaction(world: World) -> None:
    cert = await issue_one(world)
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
    cert = await issue_one(world)
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
    cert = await issue_one(world)
    target = cert.id if which == "issued" else uuid.uuid4()
    commits, published = len(world.store.writing_commits()), len(world.events.published)

    with pytest.raises(error):
        await world.service().revoke(target, reason, actor="a", application_id=application_id)

    assert world.store.certificates[cert.id] == cert
    assert world.listener.calls == []
    assert len(world.store.writing_commits()) == commits
    assert len(world.events.published) == published


async def test_ok_revoke_within_the_certificates_application(world: World) -> None:
    cert = await issue_one(world)
    revoked = await world.service().revoke(
        cert.id, RevocationReason.UNSPECIFIED, actor="a", application_id=APP.id
    )
    assert revoked.status is CertificateStatus.REVOKED


async def test_fail_raise_in_listener_revokes_nothing(world: World) -> None:
    cert = await issue_one(world)
    world.listener.fail = RuntimeError("CRL could not be rebuilt")
    commits, published = len(world.store.writing_commits()), len(world.events.published)

    with pytest.raises(RuntimeError):
        await world.service().revoke(cert.id, RevocationReason.KEY_COMPROMISE, actor="a")

    assert world.store.certificates[cert.id] == cert
    assert world.store.extra == []
    assert len(world.store.writing_commits()) == commits
    assert len(world.events.published) == published


async def test_ok_revoke_without_a_listener(world: World) -> None:
    cert = await issue_one(world)
    service = EnrollmentService(world.tx, world.signer, world.clock, world.events)
    revoked = await service.revoke(cert.id, RevocationReason.KEY_COMPROMISE, actor="a")
    assert world.store.certificates[cert.id] == revoked
    assert world.store.audit_actions()[-1] == "certificate.revoked"
