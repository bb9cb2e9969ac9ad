"""Every entity comes back equal to what went in, with tz-aware UTC datetimes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from store_factories import NOW, application, attachment, ca, make_world, policy, profile

from gateway.core.errors import NotFound
from gateway.core.model import (
    ApiToken,
    AuditEvent,
    CAKind,
    CAStatus,
    CertificateStatus,
    CrlRecord,
    EnrollmentMethod,
    KeyType,
    NameRule,
    Principal,
    PrincipalKind,
    ProductRole,
    RevocationReason,
    Secret,
    SubjectRule,
    new_id,
)
from store.db import Database
from store.filters import AuditFilter


def _assert_utc(*values: datetime | None) -> None:
    for value in values:
        if value is not None:
            assert value.tzinfo is not None
            assert value.utcoffset() == timedelta(0)


async def test_organizations_projects(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        assert await tx.organizations.get(world.org.id) == world.org
        assert await tx.organizations.get_by_name(world.org.name) == world.org
        assert await tx.organizations.list() == [world.org]
        got = await tx.projects.get(world.project.id)
        assert got == world.project
        assert got is not None
        assert isinstance(got.wrapped_data_key, bytes)
        _assert_utc(got.created_at)
        assert await tx.projects.list() == [world.project]
        assert await tx.projects.list(world.org.id) == [world.project]
        assert await tx.projects.list(new_id()) == []
        assert await tx.projects.get_active(world.org.id) == world.project
        assert await tx.organizations.get(new_id()) is None


async def test_certificate_authorities(database: Database) -> None:
    world = await make_world(database)
    intermediate = ca(
        world.project.id,
        kind=CAKind.INTERMEDIATE,
        parent_id=world.ca.id,
        key_type=KeyType.RSA_3072,
        chain_pem=world.ca.certificate_pem,
    )
    async with database.transaction() as tx:
        await tx.cas.add(intermediate)
    async with database.transaction() as tx:
        got = await tx.cas.get(intermediate.id)
        assert got == intermediate
        assert got is not None
        _assert_utc(got.not_before, got.not_after, got.created_at)
        assert await tx.cas.get_by_name(world.project.id, intermediate.name) == intermediate
        listed = await tx.cas.list(world.project.id)
        assert sorted(listed, key=lambda c: c.name) == sorted(
            [world.ca, intermediate], key=lambda c: c.name
        )
        assert len(await tx.cas.list()) == 2
        disabled = await tx.cas.set_status(intermediate.id, CAStatus.DISABLED)
        assert disabled == dataclasses.replace(intermediate, status=CAStatus.DISABLED)
        assert await tx.cas.set_status(new_id(), CAStatus.DISABLED) is None
    async with database.transaction() as tx:
        assert (await tx.cas.get(intermediate.id)) == disabled


async def test_policies_keep_their_rules(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        assert await tx.policies.get(world.policy.id) == world.policy
        assert await tx.policies.get_by_name(world.project.id, world.policy.name) == world.policy
        assert await tx.policies.list(world.project.id) == [world.policy]
        rules = dataclasses.replace(
            world.policy.rules,
            subject=(SubjectRule("CN", required=True), SubjectRule("O", allow=("Acme",))),
            ip=NameRule(allow=("127.0.0.0/8",)),
            max_validity_days=30,
        )
        changed = dataclasses.replace(world.policy, name="renamed", rules=rules)
        assert await tx.policies.update(changed) == changed
    async with database.transaction() as tx:
        assert await tx.policies.get(world.policy.id) == changed
        with pytest.raises(NotFound):
            await tx.policies.update(dataclasses.replace(changed, id=new_id()))


async def test_profiles(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        got = await tx.profiles.get(world.profile.id)
        assert got == world.profile
        assert got is not None
        assert isinstance(got.key_usages, tuple)
        assert await tx.profiles.get_by_slug(world.project.id, world.profile.slug) == got
        assert await tx.profiles.list(world.project.id) == [got]
        assert await tx.profiles.list() == [got]
        changed = dataclasses.replace(
            got,
            slug="tls-client",
            validity_days=7,
            extended_key_usages=("client_auth", "1.3.6.1.5.5.7.3.2"),
            enrollment={"scep": {"enabled": True}},
            default_key_type=KeyType.ED25519,
        )
        assert await tx.profiles.update(changed) == changed
    async with database.transaction() as tx:
        assert await tx.profiles.get(world.profile.id) == changed


async def test_applications_and_attachments(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        assert await tx.applications.get(world.app.id) == world.app
        assert await tx.applications.get_by_slug(world.project.id, world.app.slug) == world.app
        assert await tx.applications.list(world.project.id) == [world.app]
        renamed = dataclasses.replace(world.app, slug="mobile-backend", description="")
        assert await tx.applications.update(renamed) == renamed
        att = attachment(world.app.id, world.profile.id)
        await tx.attachments.add(att)
    async with database.transaction() as tx:
        assert await tx.attachments.get(world.app.id, world.profile.id) == att
        assert await tx.attachments.get(world.app.id, new_id()) is None
        assert await tx.attachments.list(world.app.id) == [att]
        methods: dict[str, dict[str, Any]] = {
            "est": {"enabled": True, "label": "x"},
            "api": {"enabled": False},
        }
        updated = await tx.attachments.update_methods(att.id, methods)
        assert updated == dataclasses.replace(att, methods=methods)
        assert updated.method_enabled(EnrollmentMethod.EST)
        with pytest.raises(NotFound):
            await tx.attachments.update_methods(new_id(), methods)
    async with database.transaction() as tx:
        assert await tx.attachments.get_by_id(att.id) == updated
        assert await tx.applications.get(world.app.id) == renamed


async def test_certificates(database: Database) -> None:
    world = await make_world(database)
    first = world.certificate(application_id=None, common_name=None, sans=())
    renewed = world.certificate(
        renewed_from=first.id,
        method=EnrollmentMethod.ACME,
        status=CertificateStatus.REVOKED,
        revoked_at=NOW + timedelta(hours=1),
        revocation_reason=RevocationReason.KEY_COMPROMISE,
    )
    async with database.transaction() as tx:
        await tx.certificates.add(first)
        await tx.certificates.add(renewed)
    async with database.transaction() as tx:
        assert await tx.certificates.get(first.id) == first
        got = await tx.certificates.get_by_serial(renewed.serial)
        assert got == renewed
        assert got is not None
        _assert_utc(got.not_before, got.not_after, got.revoked_at, got.created_at)
        assert await tx.certificates.get_by_serial("00") is None


async def test_principals_and_tokens(database: Database) -> None:
    admin = Principal(new_id(), "admin", PrincipalKind.USER, ProductRole.ADMIN, NOW)
    robot = Principal(new_id(), "ci", PrincipalKind.MACHINE, None, NOW, disabled=True)
    token = ApiToken(
        new_id(),
        admin.id,
        "laptop",
        "scrypt$16384$8$1$c2FsdA$aGFzaA",
        NOW,
        NOW + timedelta(days=30),
        None,
    )
    forever = ApiToken(new_id(), admin.id, "ci", "scrypt$x", NOW + timedelta(seconds=1), None, None)
    async with database.transaction() as tx:
        await tx.principals.add(admin)
        await tx.principals.add(robot)
        await tx.tokens.add(token)
        await tx.tokens.add(forever)
    async with database.transaction() as tx:
        assert await tx.principals.get(admin.id) == admin
        assert await tx.principals.get_by_name("ci") == robot
        assert {p.id for p in await tx.principals.list()} == {admin.id, robot.id}
        assert await tx.tokens.get(token.id) == token
        assert await tx.tokens.list(admin.id) == [token, forever]
        at = NOW + timedelta(days=1)
        revoked = await tx.tokens.revoke(token.id, at)
        assert revoked == dataclasses.replace(token, revoked_at=at)
        assert await tx.tokens.revoke(token.id, at) is None
        assert await tx.tokens.revoke(new_id(), at) is None


async def test_secrets_replace_and_delete(database: Database) -> None:
    world = await make_world(database)
    owner = f"attachment:{new_id()}:acme"
    first = Secret(new_id(), world.project.id, owner, "eab_hmac", b"\x00cipher", NOW)
    async with database.transaction() as tx:
        await tx.secrets.add(first)
    async with database.transaction() as tx:
        assert await tx.secrets.get(first.id) == first
        assert await tx.secrets.get_by_owner(owner, "eab_hmac") == first
        assert await tx.secrets.get_by_owner(owner, "other") is None
        second = Secret(new_id(), world.project.id, owner, "eab_hmac", b"new", NOW)
        assert await tx.secrets.replace(second) == second
        third = Secret(new_id(), world.project.id, owner, "ra_key", b"ra", NOW)
        assert await tx.secrets.replace(third) == third
    async with database.transaction() as tx:
        assert await tx.secrets.get_by_owner(owner, "eab_hmac") == second
        assert await tx.secrets.get(first.id) is None
        assert await tx.secrets.delete(second.id) is True
        assert await tx.secrets.delete(second.id) is False
        assert await tx.secrets.get_by_owner(owner, "eab_hmac") is None
        assert await tx.secrets.get(third.id) == third


async def test_crls_upsert_and_numbers(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        assert await tx.crls.get(world.ca.id) is None
        assert await tx.cas.next_crl_number(world.ca.id) == 1
        assert await tx.cas.next_crl_number(world.ca.id) == 2
        record = CrlRecord(world.ca.id, 2, b"\x30\x82der", NOW, NOW + timedelta(days=7))
        await tx.crls.put(record)
        assert await tx.crls.get(world.ca.id) == record
        newer = CrlRecord(
            world.ca.id, 3, b"\x30\x82new", NOW + timedelta(days=1), NOW + timedelta(days=8)
        )
        await tx.crls.put(newer)
        with pytest.raises(NotFound):
            await tx.cas.next_crl_number(new_id())
    async with database.transaction() as tx:
        assert await tx.crls.get(world.ca.id) == newer
        assert await tx.cas.next_crl_number(world.ca.id) == 3


async def test_audit_events_and_filters(database: Database) -> None:
    world = await make_world(database)
    events = [
        AuditEvent(
            new_id(),
            NOW + timedelta(minutes=i),
            f"user{i % 2}",
            "certificate.issued" if i < 3 else "certificate.revoked",
            "certificate",
            f"t{i}",
            world.project.id,
            world.app.id if i % 2 == 0 else None,
            "192.0.2.1" if i == 0 else None,
            {"serial": f"{i:02x}", "n": [i]},
        )
        for i in range(5)
    ]
    async with database.transaction() as tx:
        for event in events:
            await tx.audit.add(event)
    async with database.transaction() as tx:
        page = await tx.audit.list(AuditFilter(), limit=10, offset=0)
        assert page.items == tuple(reversed(events))
        assert page.total == 5
        _assert_utc(*(e.at for e in page.items))
        page = await tx.audit.list(AuditFilter(action="certificate.issued"), limit=2, offset=0)
        assert page.total == 3
        assert page.items == (events[2], events[1])
        assert (await tx.audit.list(AuditFilter(application_id=world.app.id), 10, 0)).total == 3
        assert (await tx.audit.list(AuditFilter(project_id=world.project.id), 10, 0)).total == 5
        assert (await tx.audit.list(AuditFilter(actor="user1"), 10, 0)).total == 2
        assert (await tx.audit.list(AuditFilter(target_id="t4"), 10, 0)).items == (events[4],)
        window = AuditFilter(since=NOW + timedelta(minutes=1), until=NOW + timedelta(minutes=3))
        assert (await tx.audit.list(window, 10, 0)).items == (events[2], events[1])


async def test_datetimes_normalized_to_utc(database: Database) -> None:
    world = await make_world(database)
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2030, 1, 1, 14, 0, tzinfo=plus_two)
    cert = world.certificate(not_after=local)
    async with database.transaction() as tx:
        await tx.certificates.add(cert)
    async with database.transaction() as tx:
        got = await tx.certificates.get(cert.id)
    assert got is not None
    assert got.not_after == local
    assert got.not_after.tzinfo == UTC
    assert got.not_after.hour == 12


async def test_naive_datetimes_are_refused(database: Database) -> None:
    world = await make_world(database)
    with pytest.raises(Exception, match="naive datetime"):
        async with database.transaction() as tx:
            await tx.certificates.add(world.certificate(not_after=datetime(2030, 1, 1)))


async def test_factories_cover_defaults(database: Database) -> None:
    # Separate projects may reuse names and slugs.
    world = await make_world(database)
    other = await make_world(database)
    async with database.transaction() as tx:
        pol = policy(other.project.id, name=world.policy.name)
        await tx.policies.add(pol)
        await tx.profiles.add(
            profile(other.project.id, other.ca.id, pol.id, slug=world.profile.slug)
        )
        await tx.applications.add(application(other.project.id, slug=world.app.slug))
        await tx.cas.add(ca(other.project.id, name=world.ca.name))
