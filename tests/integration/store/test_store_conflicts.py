"""Duplicates raise domain errors, and the transaction they happened in stays usable."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from store_factories import (
    NOW,
    World,
    add_world,
    application,
    attachment,
    ca,
    make_world,
    org,
    policy,
    profile,
    project,
)

from gateway.core.errors import Conflict, DuplicateSerial, InvalidInput, NotFound
from gateway.core.model import (
    Principal,
    PrincipalKind,
    ProjectStatus,
    Secret,
    new_id,
)
from store.db import Database, Tx

Duplicate = Callable[[Tx, World], Awaitable[Any]]


async def _dup_org(tx: Tx, w: World) -> None:
    await tx.organizations.add(org(name=w.org.name))


async def _dup_project(tx: Tx, w: World) -> None:
    await tx.projects.add(project(w.org.id, name=w.project.name))


async def _dup_ca(tx: Tx, w: World) -> None:
    await tx.cas.add(ca(w.project.id, name=w.ca.name))


async def _dup_policy(tx: Tx, w: World) -> None:
    await tx.policies.add(policy(w.project.id, name=w.policy.name))


async def _dup_profile(tx: Tx, w: World) -> None:
    await tx.profiles.add(profile(w.project.id, w.ca.id, w.policy.id, slug=w.profile.slug))


async def _dup_application(tx: Tx, w: World) -> None:
    await tx.applications.add(application(w.project.id, slug=w.app.slug))


async def _dup_attachment(tx: Tx, w: World) -> None:
    await tx.attachments.add(attachment(w.app.id, w.profile.id))
    await tx.attachments.add(attachment(w.app.id, w.profile.id))


async def _dup_principal(tx: Tx, w: World) -> None:
    await tx.principals.add(Principal(new_id(), "alice", PrincipalKind.USER, None, NOW))
    await tx.principals.add(Principal(new_id(), "alice", PrincipalKind.MACHINE, None, NOW))


async def _dup_secret(tx: Tx, w: World) -> None:
    await tx.secrets.add(Secret(new_id(), w.project.id, "attachment:x:acme", "eab", b"1", NOW))
    await tx.secrets.add(Secret(new_id(), w.project.id, "attachment:x:acme", "eab", b"2", NOW))


async def _dup_id(tx: Tx, w: World) -> None:
    await tx.organizations.add(org(id=w.org.id))


async def _second_active_project(tx: Tx, w: World) -> None:
    await tx.projects.add(project(w.org.id, status=ProjectStatus.ACTIVE))


async def _policy_renamed_onto_another(tx: Tx, w: World) -> None:
    other = policy(w.project.id)
    await tx.policies.add(other)
    await tx.policies.update(dataclasses.replace(other, name=w.policy.name))


async def _profile_slug_onto_another(tx: Tx, w: World) -> None:
    other = profile(w.project.id, w.ca.id, w.policy.id)
    await tx.profiles.add(other)
    await tx.profiles.update(dataclasses.replace(other, slug=w.profile.slug))


async def _app_slug_onto_another(tx: Tx, w: World) -> None:
    other = application(w.project.id)
    await tx.applications.add(other)
    await tx.applications.update(dataclasses.replace(other, slug=w.app.slug))


CASES = [
    pytest.param(_dup_org, "an organization named 'org-", id="fail/organization-name"),
    pytest.param(_dup_project, "a project named 'project-", id="fail/project-name"),
    pytest.param(_dup_ca, "a certificate authority named 'ca-", id="fail/ca-name"),
    pytest.param(_dup_policy, "a policy named 'policy-", id="fail/policy-name"),
    pytest.param(_dup_profile, "a profile with slug 'profile-", id="fail/profile-slug"),
    pytest.param(_dup_application, "an application with slug 'app-", id="fail/app-slug"),
    pytest.param(_dup_attachment, "already attached", id="fail/attachment"),
    pytest.param(_dup_principal, "a principal named 'alice' already exists", id="fail/principal"),
    pytest.param(_dup_secret, "'eab' secret for 'attachment:x:acme'", id="fail/secret"),
    pytest.param(_dup_id, "organization with this id already exists", id="fail/primary-key"),
    pytest.param(_second_active_project, "already has an active project", id="fail/two-active"),
    pytest.param(_policy_renamed_onto_another, "a policy named", id="fail/policy-update"),
    pytest.param(_profile_slug_onto_another, "a profile with slug", id="fail/profile-update"),
    pytest.param(_app_slug_onto_another, "an application with slug", id="fail/app-update"),
]


@pytest.mark.parametrize(("duplicate", "message"), CASES)
async def test_duplicate_raises_conflict_and_tx_stays_usable(
    database: Database, duplicate: Duplicate, message: str
) -> None:
    world = await make_world(database)
    survivor = org()
    async with database.transaction() as tx:
        with pytest.raises(Conflict) as caught:
            await duplicate(tx, world)
        assert message in caught.value.message
        assert caught.value.code == "conflict"
        # The failed statement was rolled back to its savepoint; the rest goes on.
        await tx.organizations.add(survivor)
    async with database.transaction() as tx:
        assert await tx.organizations.get(survivor.id) == survivor


async def test_duplicate_serial(database: Database) -> None:
    world = await make_world(database)
    first = world.certificate()
    async with database.transaction() as tx:
        await tx.certificates.add(first)
    # The certificate insert skips the SAVEPOINT (it is on every issuance's path): the
    # error ends the transaction, and the core re-signs in a new one.
    with pytest.raises(DuplicateSerial) as caught:
        async with database.transaction() as tx:
            await tx.certificates.add(world.certificate(serial=first.serial))
    assert first.serial in caught.value.message
    # A reused id is a plain Conflict, not DuplicateSerial.
    with pytest.raises(Conflict) as other:
        async with database.transaction() as tx:
            await tx.certificates.add(world.certificate(id=first.id))
    assert not isinstance(other.value, DuplicateSerial)
    again = world.certificate()
    async with database.transaction() as tx:
        await tx.certificates.add(again)
    async with database.transaction() as tx:
        assert await tx.certificates.get(again.id) == again


async def test_missing_reference_is_invalid_input(database: Database) -> None:
    world = await make_world(database)
    async with database.transaction() as tx:
        with pytest.raises(InvalidInput, match="does not exist"):
            await tx.profiles.add(profile(world.project.id, new_id(), world.policy.id))
        await tx.applications.add(application(world.project.id))
    with pytest.raises(InvalidInput):
        async with database.transaction() as tx:
            await tx.certificates.add(world.certificate(ca_id=new_id()))


async def test_one_active_project_per_organization(database: Database) -> None:
    async with database.transaction() as tx:
        world = await add_world(tx)
        legacy = project(world.org.id)
        await tx.projects.add(legacy)
        # Another organization has its own active project.
        other = await add_world(tx)
    async with database.transaction() as tx:
        assert await tx.projects.get_active(world.org.id) == world.project
        now_active = await tx.projects.set_active(world.org.id, legacy.id)
        assert now_active == dataclasses.replace(legacy, status=ProjectStatus.ACTIVE)
    async with database.transaction() as tx:
        assert await tx.projects.get_active(world.org.id) == now_active
        old = await tx.projects.get(world.project.id)
        assert old is not None
        assert old.status is ProjectStatus.LEGACY
        assert await tx.projects.get_active(other.org.id) == other.project
        # Idempotent.
        assert await tx.projects.set_active(world.org.id, legacy.id) == now_active
        with pytest.raises(NotFound):
            await tx.projects.set_active(world.org.id, other.project.id)
        with pytest.raises(NotFound):
            await tx.projects.set_active(world.org.id, new_id())
    async with database.transaction() as tx:
        statuses = {p.id: p.status for p in await tx.projects.list(world.org.id)}
    assert statuses == {world.project.id: ProjectStatus.LEGACY, legacy.id: ProjectStatus.ACTIVE}


async def test_rollback_on_exception_leaves_nothing(database: Database) -> None:
    world = await make_world(database)
    o = org()
    cert = world.certificate()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with database.transaction() as tx:
            await tx.organizations.add(o)
            await tx.certificates.add(cert)
            await tx.cas.next_crl_number(world.ca.id)
            assert await tx.organizations.get(o.id) == o
            raise Boom
    async with database.transaction() as tx:
        assert await tx.organizations.get(o.id) is None
        assert await tx.certificates.get(cert.id) is None
        assert await tx.cas.next_crl_number(world.ca.id) == 1
