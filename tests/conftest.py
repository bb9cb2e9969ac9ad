"""Fixtures shared by every test layer.

``database_url`` (str)
    A database URL, parametrized so that each test using it runs once per backend:

    * ``sqlite``: a fresh file, ``sqlite+aiosqlite:///{tmp_path}/certgate.db``;
    * ``postgresql``: only when the environment variable ``CERTGATE_TEST_DATABASE_URL``
      is set (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/certgate_test``).
      Before each test that database's ``public`` schema is dropped and re-created,
      so every test starts from an empty database. Never point it at data you keep,
      and give concurrent test runs (e.g. pytest-xdist workers) separate databases.

    The URL is not migrated; use ``database`` for that, or call
    ``store.migrate.upgrade(database_url)`` yourself (migration tests do).

``database`` (store.db.Database, async)
    A ``Database`` for ``database_url``, migrated to the newest revision with
    ``await store.migrate.upgrade(url)``, closed after the test. Use
    ``async with database.transaction() as tx: ...``.

Test ids carry the backend: ``test_x[sqlite]``, ``test_x[postgresql]``; select one with
``-k sqlite``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from store.db import Database
from store.migrate import upgrade

POSTGRES_URL_ENV = "CERTGATE_TEST_DATABASE_URL"


def _backends() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(POSTGRES_URL_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            await conn.execute(text("GRANT ALL ON SCHEMA public TO public"))
    finally:
        await engine.dispose()


def _run_outside_test_loop(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # A sync fixture must not touch the test's event loop; run in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(coro_factory())).result()


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/certgate.db"
    url = os.environ[POSTGRES_URL_ENV]
    _run_outside_test_loop(lambda: _reset_postgres(url))
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    await upgrade(database_url)
    db = Database.create(database_url)
    try:
        yield db
    finally:
        await db.close()
