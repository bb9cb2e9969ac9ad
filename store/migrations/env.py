"""Alembic environment.

Programmatic use (store.migrate) hands over an open connection, already inside a
transaction, via `config.attributes["connection"]` (Alembic's "connection sharing"
recipe). The alembic CLI (store/alembic.ini) gets its URL from CERTGATE_DATABASE__URL or
`sqlalchemy.url` and opens its own async engine.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from store.db import create_engine, normalize_url
from store.tables import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = os.environ.get("CERTGATE_DATABASE__URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set CERTGATE_DATABASE__URL (or sqlalchemy.url) to run alembic")
    return normalize_url(url).render_as_string(hide_password=False)


async def _run_cli() -> None:
    engine = create_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    shared = config.attributes.get("connection")
    if shared is not None:
        _run(shared)
    else:
        asyncio.run(_run_cli())
