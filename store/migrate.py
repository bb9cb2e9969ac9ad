"""Schema migrations (Alembic), runnable inside the server's event loop.

    await upgrade(url)       # server start-up
    upgrade_sync(url)        # `certgate db upgrade`

The Alembic Config is built in code with script_location pointing at this package, so it
works from an installed package and from any working directory; store/alembic.ini is
only for developers running the alembic CLI.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from store.db import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# pg_advisory_xact_lock key serializing concurrent upgrades (ASCII "certgate").
_PG_LOCK_KEY = 0x6365727467617465


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest revision; a no-op when it is there.

    Everything runs in one transaction (both dialects have transactional DDL with our
    settings). Concurrent callers are serialized: on PostgreSQL by an advisory lock held
    until commit, on SQLite by BEGIN IMMEDIATE (see store.db); the second one then finds
    the schema current and does nothing.
    """
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                await conn.execute(lock, {"key": _PG_LOCK_KEY})
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def upgrade_sync(url: str) -> None:
    """upgrade() for callers without an event loop (the CLI)."""
    asyncio.run(upgrade(url))


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None for an empty database."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()
