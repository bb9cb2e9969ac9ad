"""The configuration read cache (store.cache): hits, invalidation by this process's writes,
by another process's writes (the generation triggers), and no stale fill after a drop."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from store.cache import writes_config
from store.db import Database, Tx
from store.tables import organizations
from tests.integration.store import store_factories as f


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        pytest.param("INSERT INTO profiles (id) VALUES (?)", True, id="ok/insert-config"),
        pytest.param("UPDATE api_tokens SET revoked_at=? WHERE id=?", True, id="ok/update"),
        pytest.param("DELETE FROM application_members WHERE x", True, id="ok/delete"),
        pytest.param('INSERT INTO "secrets" (id) VALUES (?)', True, id="ok/quoted"),
        pytest.param("INSERT INTO certificates (id) VALUES (?)", False, id="ok/not-config"),
        pytest.param("UPDATE acme_orders SET status=?", False, id="ok/protocol-state"),
        pytest.param("SELECT * FROM profiles", False, id="ok/read"),
        pytest.param("UPDATE", False, id="fail/truncated"),
    ],
)
def test_writes_config(statement: str, expected: bool) -> None:
    assert writes_config(statement) is expected


async def _org_name(database: Database, org_id: object) -> str | None:
    async def load(tx: Tx) -> str | None:
        found = await tx.organizations.get(org_id)  # type: ignore[arg-type]
        return found.name if found else None

    return await database.cached(("org-name", org_id), load)


async def _rename(database: Database, org_id: object, name: str) -> None:
    async with database.transaction() as tx:
        await tx.session.execute(
            update(organizations).where(organizations.c.id == org_id).values(name=name)
        )


async def test_hit_then_own_write_drops_it(database: Database) -> None:
    org = f.org()
    async with database.transaction() as tx:
        await tx.organizations.add(org)
    assert await _org_name(database, org.id) == org.name
    hits = database.cache.hits
    assert await _org_name(database, org.id) == org.name
    assert database.cache.hits == hits + 1
    await _rename(database, org.id, "renamed")
    # This process's own write is visible at once, without waiting for a recheck.
    assert await _org_name(database, org.id) == "renamed"


async def test_another_process_write_is_seen_after_the_recheck(database_url: str) -> None:
    from store.migrate import upgrade

    await upgrade(database_url)
    first, second = Database.create(database_url), Database.create(database_url)
    try:
        org = f.org()
        async with first.transaction() as tx:
            await tx.organizations.add(org)
        first.cache._recheck = 0.05
        assert await _org_name(first, org.id) == org.name
        await _rename(second, org.id, "elsewhere")  # the triggers raise the generation
        await asyncio.sleep(0.1)
        assert await _org_name(first, org.id) == "elsewhere"
    finally:
        await first.close()
        await second.close()


async def test_a_load_overtaken_by_a_drop_is_not_kept(database: Database) -> None:
    org = f.org()
    async with database.transaction() as tx:
        await tx.organizations.add(org)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: Tx) -> str:
        started.set()
        await release.wait()
        return "old"

    loading = asyncio.create_task(database.cached(("slow",), slow))
    await started.wait()
    database.cache.invalidate()  # e.g. a configuration write committed meanwhile
    release.set()
    assert await loading == "old"  # the caller gets what it read ...

    async def fresh(tx: Tx) -> str:
        return "new"

    assert await database.cached(("slow",), fresh) == "new"  # ... but it was not kept
