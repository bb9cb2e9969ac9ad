"""Concurrent transactions: each in its own connection, as in the server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from store_factories import NOW, make_world, org, project

from gateway.core.errors import Conflict
from gateway.core.model import AuditEvent, Certificate, ProjectStatus, RevocationReason, new_id
from store.db import Database
from store.filters import CertificateFilter


async def test_concurrent_revocations_exactly_one_wins(database: Database) -> None:
    world = await make_world(database)
    cert = world.certificate()
    async with database.transaction() as tx:
        await tx.certificates.add(cert)

    async def revoke(i: int) -> Certificate | None:
        async with database.transaction() as tx:
            at = NOW + timedelta(seconds=i)
            return await tx.certificates.revoke(cert.id, at, RevocationReason.KEY_COMPROMISE)

    results = await asyncio.gather(*(revoke(i) for i in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    async with database.transaction() as tx:
        assert await tx.certificates.get(cert.id) == winners[0]


async def test_concurrent_crl_numbers_are_distinct(database: Database) -> None:
    world = await make_world(database)

    async def bump() -> int:
        async with database.transaction() as tx:
            return await tx.cas.next_crl_number(world.ca.id)

    numbers = await asyncio.gather(*(bump() for _ in range(20)))
    assert sorted(numbers) == list(range(1, 21))


async def test_concurrent_certificate_inserts(database: Database) -> None:
    world = await make_world(database)

    async def issue(i: int) -> Certificate:
        cert = world.certificate(created_at=NOW + timedelta(seconds=i))
        async with database.transaction() as tx:
            # Read, write, read: the shape of one enrollment.
            assert await tx.cas.get(world.ca.id) is not None
            await tx.certificates.add(cert)
            await tx.audit.add(_audit(cert))
            assert await tx.certificates.get(cert.id) == cert
        return cert

    issued = await asyncio.gather(*(issue(i) for i in range(30)))
    async with database.transaction() as tx:
        page = await tx.certificates.list(CertificateFilter(), limit=100, offset=0)
    assert page.total == 30
    assert {c.id for c in page.items} == {c.id for c in issued}


async def test_concurrent_inserts_of_one_serial(database: Database) -> None:
    world = await make_world(database)
    serial = "0a" * 16

    async def issue() -> str:
        try:
            async with database.transaction() as tx:
                await tx.certificates.add(world.certificate(serial=serial))
        except Conflict:
            return "conflict"
        except Exception as err:  # DuplicateSerial is not a Conflict
            return type(err).__name__
        return "ok"

    results = await asyncio.gather(*(issue() for _ in range(8)))
    assert sorted(results) == ["DuplicateSerial"] * 7 + ["ok"]


async def test_concurrent_set_active_leaves_one_active(database: Database) -> None:
    o = org()
    projects = [project(o.id) for _ in range(6)]
    async with database.transaction() as tx:
        await tx.organizations.add(o)
        for p in projects:
            await tx.projects.add(p)

    async def activate(i: int) -> str:
        try:
            async with database.transaction() as tx:
                await tx.projects.set_active(o.id, projects[i].id)
        except Conflict:
            return "conflict"
        return "ok"

    results = await asyncio.gather(*(activate(i) for i in range(6)))
    assert "ok" in results
    async with database.transaction() as tx:
        listed = await tx.projects.list(o.id)
    assert [p.status for p in listed].count(ProjectStatus.ACTIVE) == 1


async def test_reads_do_not_wait_for_a_writer(database: Database) -> None:
    world = await make_world(database)
    writing = asyncio.Event()
    release = asyncio.Event()

    async def slow_writer() -> None:
        async with database.transaction() as tx:
            await tx.certificates.add(world.certificate())
            writing.set()
            await release.wait()

    writer = asyncio.create_task(slow_writer())
    await writing.wait()
    try:
        async with asyncio.timeout(5):
            async with database.transaction(read_only=True) as tx:
                assert await tx.cas.get(world.ca.id) == world.ca
            await database.ping()
    finally:
        release.set()
        await writer


async def test_read_only_transaction_refuses_writes_on_postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite cannot enforce it; read_only there only means BEGIN DEFERRED")
    with pytest.raises(Exception, match="read-only"):
        async with database.transaction(read_only=True) as tx:
            await tx.organizations.add(org())
    # The pooled connection is writable again afterwards.
    async with database.transaction() as tx:
        await tx.organizations.add(org())


def _audit(cert: Certificate) -> AuditEvent:
    return AuditEvent(
        new_id(), cert.created_at, "test", "certificate.issued", "certificate", str(cert.id)
    )


async def test_two_processes_on_one_database(database: Database, database_url: str) -> None:
    """A second Database on the same URL stands in for a second process: on SQLite only
    BEGIN IMMEDIATE + busy_timeout keep the two apart."""
    world = await make_world(database)
    second = Database.create(database_url)
    try:

        async def issue(db: Database, i: int) -> None:
            async with db.transaction() as tx:
                await tx.certificates.add(world.certificate())
                await tx.cas.next_crl_number(world.ca.id)

        await asyncio.gather(*(issue(database if i % 2 else second, i) for i in range(30)))
        async with second.transaction() as tx:
            page = await tx.certificates.list(CertificateFilter(), limit=0, offset=0)
            assert page.total == 30
            assert await tx.cas.next_crl_number(world.ca.id) == 31
    finally:
        await second.close()


async def test_nested_write_transaction_on_sqlite_times_out(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL runs the two transactions side by side")
    monkeypatch.setattr("store.db.SQLITE_BUSY_TIMEOUT_MS", 200)
    async with database.transaction() as outer:
        await outer.organizations.add(org())
        with pytest.raises(TimeoutError, match="write transaction opened inside another"):
            async with database.transaction() as inner:
                await inner.organizations.add(org())
        # Reads in a read-only transaction are fine.
        async with database.transaction(read_only=True) as reader:
            assert await reader.organizations.list() == []
