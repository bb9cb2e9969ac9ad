"""Migrations: from empty to head, idempotent, concurrent-safe, and equal to store.tables."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from store_factories import org

from store.db import Database, create_engine
from store.migrate import current_revision, head_revision, upgrade, upgrade_sync
from store.tables import metadata

# Every table the models declare, plus Alembic's bookkeeping: a migration that forgets a
# table (or a table nobody migrates) fails here.
EXPECTED_TABLES = {"alembic_version", *metadata.tables}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade(database_url)
    assert await current_revision(database_url) == head_revision()
    assert await _tables(database_url) == EXPECTED_TABLES


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    await upgrade(database_url)
    db = Database.create(database_url)
    try:
        async with db.transaction() as tx:
            await tx.organizations.add(org())
        await upgrade(database_url)
        async with db.transaction() as tx:
            assert len(await tx.organizations.list()) == 1
    finally:
        await db.close()
    assert await current_revision(database_url) == head_revision()


async def test_concurrent_upgrades_serialize(database_url: str) -> None:
    await asyncio.gather(*(upgrade(database_url) for _ in range(4)))
    assert await current_revision(database_url) == head_revision()
    assert await _tables(database_url) == EXPECTED_TABLES


def test_upgrade_sync_for_the_cli(database_url: str) -> None:
    upgrade_sync(database_url)
    assert asyncio.run(current_revision(database_url)) == head_revision()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_tables(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == []


async def test_sqlite_connection_settings(database: Database) -> None:
    if database.dialect != "sqlite":
        return
    async with database.engine.connect() as conn:
        pragmas = {
            name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    # synchronous=NORMAL is 1. The busy timeout is short: the connection runs on the event
    # loop's thread (store.sqlite_inline) and BEGIN IMMEDIATE waits on the loop instead.
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 20,
        "synchronous": 1,
    }


async def test_sqlite_write_waits_for_another_writer_on_the_loop(tmp_path) -> None:
    """A second process's write lock: BEGIN IMMEDIATE waits without stopping the loop, and
    gets the lock once the other writer commits."""
    import asyncio
    import sqlite3

    from store.db import Database as Db

    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await upgrade(url)
    db = Db.create(url)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, other.execute, "COMMIT")
        async with db.transaction() as tx:
            await tx.session.execute(
                text("UPDATE config_generation SET value = value WHERE id = 1")
            )
        task.cancel()
        # The loop kept running while the transaction waited for the lock (~0.3 s).
        assert ticks >= 20
    finally:
        other.close()
        await db.close()


async def test_ping_and_dialect(database: Database, database_url: str) -> None:
    await database.ping()
    assert database.dialect == database_url.split("+", 1)[0]
