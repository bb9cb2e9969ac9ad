"""Approval policies and certificate requests in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from store_factories import NOW, World, make_world

from gateway.core.errors import Conflict, InvalidInput
from gateway.core.model import (
    Approval,
    ApprovalPolicy,
    ApprovalStep,
    Certificate,
    CertificateRequest,
    EnrollmentMethod,
    RequestState,
    new_id,
)
from store.db import Database
from store.filters import CertificateFilter
from store.repos.approvals import RequestFilter


def policy(world: World, **kw: Any) -> ApprovalPolicy:
    values: dict[str, Any] = {
        "id": new_id(),
        "application_id": world.app.id,
        "profile_id": world.profile.id,
        "steps": (ApprovalStep((uuid.uuid4(), uuid.uuid4()), 2), ApprovalStep((uuid.uuid4(),))),
        "bypass": (uuid.uuid4(),),
        "request_ttl_seconds": 72 * 3600,
        "created_at": NOW,
    }
    return ApprovalPolicy(**(values | kw))


def request(world: World, **kw: Any) -> CertificateRequest:
    values: dict[str, Any] = {
        "id": new_id(),
        "application_id": world.app.id,
        "profile_id": world.profile.id,
        "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        "fingerprint": secrets.token_hex(32),
        "requester": "principal:ops",
        "requester_id": uuid.uuid4(),
        "method": EnrollmentMethod.EST,
        "state": RequestState.OPEN,
        "step": 0,
        "approvals": (),
        "requested_validity_days": 30,
        "renewed_from": None,
        "certificate_id": None,
        "comment": "",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=72),
        "updated_at": NOW,
    }
    return CertificateRequest(**(values | kw))


async def add(database: Database, req: CertificateRequest) -> CertificateRequest:
    async with database.transaction() as tx:
        await tx.requests.add(req)
    return req


async def test_ok_policy_put_get_replace_delete(database: Database) -> None:
    world = await make_world(database)
    first = policy(world)
    async with database.transaction() as tx:
        assert await tx.approval_policies.put(first) == first
    async with database.transaction(read_only=True) as tx:
        assert await tx.approval_policies.get_for(world.app.id, world.profile.id) == first
        assert await tx.approval_policies.get(first.id) == first
        assert await tx.approval_policies.list(world.app.id) == [first]
    # Replacing keeps the id and created_at of the (application, profile) policy.
    second = policy(world, created_at=NOW + timedelta(days=1), bypass=(), request_ttl_seconds=60)
    async with database.transaction() as tx:
        saved = await tx.approval_policies.put(second)
    assert saved == dataclasses.replace(second, id=first.id, created_at=NOW)
    async with database.transaction() as tx:
        assert await tx.approval_policies.delete(world.app.id, world.profile.id)
        assert not await tx.approval_policies.delete(world.app.id, world.profile.id)
        assert await tx.approval_policies.get_for(world.app.id, world.profile.id) is None


async def test_fail_policy_for_unknown_application(database: Database) -> None:
    world = await make_world(database)
    with pytest.raises(InvalidInput):
        async with database.transaction() as tx:
            await tx.approval_policies.put(policy(world, application_id=uuid.uuid4()))


async def test_ok_request_roundtrip_with_approvals(database: Database) -> None:
    world = await make_world(database)
    approvals = (
        Approval(0, uuid.uuid4(), "approved", "fine", NOW + timedelta(microseconds=7)),
        Approval(0, uuid.uuid4(), "rejected", "", NOW + timedelta(hours=1)),
    )
    req = await add(database, request(world, approvals=approvals, renewed_from=None))
    async with database.transaction(read_only=True) as tx:
        assert await tx.requests.get(req.id) == req
        assert await tx.requests.get(uuid.uuid4()) is None


async def test_ok_list_filters_and_pages(database: Database) -> None:
    world = await make_world(database)
    alice = uuid.uuid4()
    made = [
        await add(
            database,
            request(
                world,
                created_at=NOW + timedelta(minutes=i),
                state=RequestState.OPEN if i % 2 else RequestState.APPROVED,
                requester_id=alice if i < 3 else uuid.uuid4(),
            ),
        )
        for i in range(6)
    ]
    async with database.transaction(read_only=True) as tx:
        page = await tx.requests.list(RequestFilter(application_id=world.app.id), 4, 0)
        assert page.total == 6 and [r.id for r in page.items] == [r.id for r in made[::-1][:4]]
        rest = await tx.requests.list(RequestFilter(application_id=world.app.id), 4, 4)
        assert [r.id for r in rest.items] == [made[1].id, made[0].id]
        open_ = await tx.requests.list(RequestFilter(state=RequestState.OPEN))
        assert {r.id for r in open_.items} == {made[1].id, made[3].id, made[5].id}
        mine = await tx.requests.list(RequestFilter(requester_id=alice, state=RequestState.OPEN))
        assert [r.id for r in mine.items] == [made[1].id]
        other = await tx.requests.list(RequestFilter(application_id=uuid.uuid4()))
        assert other.total == 0


async def test_ok_find_by_fingerprint_and_list_due(database: Database) -> None:
    world = await make_world(database)
    fp = "ab" * 32
    old = await add(database, request(world, fingerprint=fp, state=RequestState.OPEN))
    async with database.transaction() as tx:
        closed = await tx.requests.transition(
            dataclasses.replace(old, state=RequestState.REJECTED), old
        )
    newer = await add(
        database, request(world, fingerprint=fp, created_at=NOW + timedelta(minutes=1))
    )
    live = (RequestState.OPEN, RequestState.APPROVED)
    async with database.transaction(read_only=True) as tx:
        assert await tx.requests.find_by_fingerprint(fp, live) == newer
        assert await tx.requests.find_by_fingerprint(fp, (RequestState.REJECTED,)) == closed
        assert await tx.requests.find_by_fingerprint("cd" * 32, live) is None
        assert await tx.requests.list_due(world.app.id, NOW + timedelta(hours=71)) == []
        due = await tx.requests.list_due(world.app.id, NOW + timedelta(hours=72))
        assert [r.id for r in due] == [newer.id]


async def test_fail_second_live_request_with_one_fingerprint(database: Database) -> None:
    world = await make_world(database)
    first = await add(database, request(world, fingerprint="ef" * 32))
    with pytest.raises(Conflict) as err:
        await add(database, request(world, fingerprint="ef" * 32))
    assert err.value.code == "request_exists"
    # Once the first is closed the fingerprint is free again.
    async with database.transaction() as tx:
        await tx.requests.transition(dataclasses.replace(first, state=RequestState.EXPIRED), first)
    await add(database, request(world, fingerprint="ef" * 32))


async def test_ok_transition_is_conditional_on_state_and_version(database: Database) -> None:
    world = await make_world(database)
    req = await add(database, request(world))
    moved = dataclasses.replace(req, step=1, updated_at=NOW + timedelta(seconds=1))
    async with database.transaction() as tx:
        saved = await tx.requests.transition(moved, req)
    assert saved == dataclasses.replace(moved, version=req.version + 1)
    async with database.transaction() as tx:
        # `req` is stale now (version 1): nothing is written.
        assert await tx.requests.transition(moved, req) is None
        assert await tx.requests.get(req.id) == saved


async def test_ok_concurrent_transitions_exactly_one_wins(database: Database) -> None:
    world = await make_world(database)
    req = await add(database, request(world))

    async def approve(i: int) -> CertificateRequest | None:
        approval = Approval(0, uuid.uuid4(), "approved", str(i), NOW)
        new = dataclasses.replace(req, state=RequestState.APPROVED, approvals=(approval,))
        async with database.transaction() as tx:
            return await tx.requests.transition(new, req)

    results = await asyncio.gather(*(approve(i) for i in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    async with database.transaction(read_only=True) as tx:
        assert await tx.requests.get(req.id) == winners[0]


async def test_ok_concurrent_issuance_commits_store_one_certificate(database: Database) -> None:
    """The shape of EnrollmentService._complete: insert the certificate, then move the request
    to issued conditionally, in one transaction; the losers roll back their certificate."""
    world = await make_world(database)
    req = await add(database, request(world, state=RequestState.APPROVED))

    class Lost(Exception):
        pass

    async def issue() -> Certificate | None:
        cert = world.certificate()
        try:
            async with database.transaction() as tx:
                await tx.certificates.add(cert)
                issued = dataclasses.replace(req, state=RequestState.ISSUED, certificate_id=cert.id)
                if await tx.requests.transition(issued, req) is None:
                    raise Lost
        except Lost:
            return None
        return cert

    results = await asyncio.gather(*(issue() for _ in range(8)))
    winners = [c for c in results if c is not None]
    assert len(winners) == 1
    async with database.transaction(read_only=True) as tx:
        stored = await tx.requests.get(req.id)
        page = await tx.certificates.list(CertificateFilter(application_id=world.app.id))
    assert stored is not None and stored.certificate_id == winners[0].id
    assert [c.id for c in page.items] == [winners[0].id]
