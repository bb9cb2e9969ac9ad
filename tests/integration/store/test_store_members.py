"""MemberRepository and the principal/token additions of access control, on both backends."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from store_factories import NOW, World, application, make_world, uid

from gateway.core.errors import Conflict, InvalidInput
from gateway.core.model import (
    ApiToken,
    AppRole,
    Member,
    Principal,
    PrincipalKind,
    ProductRole,
    new_id,
)
from store.db import Database, Tx


def principal(role: ProductRole | None = ProductRole.MEMBER, **kw: object) -> Principal:
    values: dict[str, object] = {
        "id": new_id(),
        "name": f"p-{uid()}",
        "kind": PrincipalKind.USER,
        "product_role": role,
        "created_at": NOW,
    }
    return Principal(**(values | kw))  # type: ignore[arg-type]


def token(principal_id: object) -> ApiToken:
    return ApiToken(new_id(), principal_id, "t", "scrypt$x", NOW, None, None)  # type: ignore[arg-type]


async def _add(tx: Tx, *principals: Principal) -> None:
    for p in principals:
        await tx.principals.add(p)


async def test_ok_add_get_list(database: Database) -> None:
    w = await make_world(database)
    alice, bob = principal(), principal()
    other = application(w.project.id)
    async with database.transaction() as tx:
        await _add(tx, alice, bob)
        await tx.applications.add(other)
        await tx.members.add(Member(w.app.id, alice.id, AppRole.ADMIN, NOW))
        await tx.members.add(Member(w.app.id, bob.id, AppRole.AUDITOR, NOW + timedelta(seconds=1)))
        await tx.members.add(Member(other.id, alice.id, AppRole.OPERATOR, NOW))
    async with database.transaction(read_only=True) as tx:
        got = await tx.members.get(w.app.id, alice.id)
        assert got == Member(w.app.id, alice.id, AppRole.ADMIN, NOW)
        assert await tx.members.get(w.app.id, new_id()) is None
        assert [(m.principal_id, m.role) for m in await tx.members.list(w.app.id)] == [
            (alice.id, AppRole.ADMIN),
            (bob.id, AppRole.AUDITOR),
        ]
        mine = await tx.members.list_for_principal(alice.id)
        assert {(m.application_id, m.role) for m in mine} == {
            (w.app.id, AppRole.ADMIN),
            (other.id, AppRole.OPERATOR),
        }


async def test_fail_add_twice_is_already_member_and_tx_stays_usable(database: Database) -> None:
    w = await make_world(database)
    alice = principal()
    async with database.transaction() as tx:
        await _add(tx, alice)
        await tx.members.add(Member(w.app.id, alice.id, AppRole.AUDITOR, NOW))
    async with database.transaction() as tx:
        with pytest.raises(Conflict) as err:
            await tx.members.add(Member(w.app.id, alice.id, AppRole.ADMIN, NOW))
        assert err.value.code == "already_member"
        # The savepoint kept the transaction alive (PostgreSQL would abort it otherwise).
        assert (await tx.members.get(w.app.id, alice.id)).role is AppRole.AUDITOR  # type: ignore[union-attr]


@pytest.mark.parametrize("missing", ["principal", "application"], ids=lambda m: f"fail/{m}")
async def test_fail_member_of_something_missing(database: Database, missing: str) -> None:
    w = await make_world(database)
    alice = principal()
    async with database.transaction() as tx:
        await _add(tx, alice)
    member = Member(w.app.id, alice.id, AppRole.AUDITOR, NOW)
    member = dataclasses.replace(member, **{f"{missing}_id": new_id()})
    async with database.transaction() as tx:
        with pytest.raises(InvalidInput):
            await tx.members.add(member)


async def test_ok_set_role_and_remove(database: Database) -> None:
    w = await make_world(database)
    alice = principal()
    async with database.transaction() as tx:
        await _add(tx, alice)
        await tx.members.add(Member(w.app.id, alice.id, AppRole.AUDITOR, NOW))
    async with database.transaction() as tx:
        changed = await tx.members.set_role(w.app.id, alice.id, AppRole.OPERATOR)
        assert changed is not None and changed.role is AppRole.OPERATOR
        assert await tx.members.set_role(w.app.id, new_id(), AppRole.ADMIN) is None
    async with database.transaction() as tx:
        removed = await tx.members.remove(w.app.id, alice.id)
        assert removed is not None and removed.role is AppRole.OPERATOR
        assert await tx.members.remove(w.app.id, alice.id) is None
    async with database.transaction(read_only=True) as tx:
        assert await tx.members.list(w.app.id) == []


async def _principal_with_everything(database: Database, w: World) -> Principal:
    alice = principal()
    other = application(w.project.id)
    async with database.transaction() as tx:
        await _add(tx, alice)
        await tx.applications.add(other)
        await tx.tokens.add(token(alice.id))
        await tx.tokens.add(token(alice.id))
        await tx.members.add(Member(w.app.id, alice.id, AppRole.ADMIN, NOW))
        await tx.members.add(Member(other.id, alice.id, AppRole.AUDITOR, NOW))
    return alice


async def test_ok_delete_principal_after_its_tokens_and_memberships(database: Database) -> None:
    w = await make_world(database)
    alice = await _principal_with_everything(database, w)
    async with database.transaction() as tx:
        removed = await tx.members.remove_principal(alice.id)
        assert {m.role for m in removed} == {AppRole.ADMIN, AppRole.AUDITOR}
        assert await tx.tokens.delete_for_principal(alice.id) == 2
        assert await tx.principals.delete(alice.id) is True
        assert await tx.principals.delete(alice.id) is False
    async with database.transaction(read_only=True) as tx:
        assert await tx.principals.get(alice.id) is None
        assert await tx.tokens.list(alice.id) == []
        assert await tx.members.list_for_principal(alice.id) == []


async def test_fail_delete_principal_still_referred_to(database: Database) -> None:
    w = await make_world(database)
    alice = await _principal_with_everything(database, w)
    async with database.transaction() as tx:
        with pytest.raises(Conflict) as err:
            await tx.principals.delete(alice.id)
        assert err.value.code == "principal_in_use"
        # Nothing half-done, and the transaction still works.
        assert await tx.principals.get(alice.id) is not None
        assert len(await tx.tokens.list(alice.id)) == 2


async def test_ok_update_principal_and_count_admins(database: Database) -> None:
    admin, other, disabled = (
        principal(ProductRole.ADMIN),
        principal(ProductRole.ADMIN),
        principal(ProductRole.ADMIN, disabled=True),
    )
    async with database.transaction() as tx:
        await _add(tx, admin, other, disabled, principal())
        assert await tx.principals.count_active_admins() == 2
        assert await tx.principals.count_active_admins(lock=True) == 2
        updated = await tx.principals.update(other.id, product_role=None, disabled=True)
        assert updated == dataclasses.replace(other, product_role=None, disabled=True)
        assert await tx.principals.update(new_id(), product_role=None, disabled=False) is None
        assert await tx.principals.count_active_admins() == 1
    async with database.transaction(read_only=True) as tx:
        many = await tx.principals.get_many([admin.id, other.id, new_id()])
        assert set(many) == {admin.id, other.id}
        assert many[other.id].disabled is True
        assert await tx.principals.get_many([]) == {}
