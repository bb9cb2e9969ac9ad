"""Fixtures shared by every test layer.

``database_url`` (str)
    The URL of an empty, unmigrated database of the test's own, parametrized so that each
    test using it runs once per backend:

    * ``sqlite``: a fresh file, ``sqlite+aiosqlite:///{tmp_path}/certgate.db``;
    * ``postgresql``: only when the environment variable ``CERTGATE_TEST_DATABASE_URL``
      is set (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/certgate_test``): a
      database of its own created beside that one (``<name>_<worker>_t<n>``) and dropped
      after the test. The database in the variable is only connected to for CREATE and
      DROP DATABASE; give concurrent test runs separate ones.

    Migration tests get it as it is; ``database`` migrates it, ``seed_gateway`` fills it
    as a first start would.

``database`` (store.db.Database, async)
    A ``Database`` for ``database_url``, migrated to the newest revision (a copy of a
    database that ``store.migrate.upgrade`` migrated once per test run), closed after
    the test. Use ``async with database.transaction() as tx: ...``.

``seed_gateway`` (tests.helpers.databases.Seed: (Config, Prepared | None) -> dict | None)
    Call it with a gateway's config before ``create_app(config)``: it gives the config's
    (empty) database and home what a first start of that config leaves there (migrated
    schema, bootstrapped demo world, ``root.key``, ``bootstrap.json``, ``root-ca.pem``),
    copied from a template built by one real first start per run and kind of
    configuration (tests/helpers/databases.py). ``create_app`` then finds the
    organization and skips its bootstrap, as on any later start. With a ``Prepared``,
    the copy also has the state that its API calls made once on the template, and the
    call returns their data. A test marked ``@pytest.mark.first_start`` gets None
    instead and nothing copied: create_app runs the real first start, and the fixture
    makes the prepared state itself.

Test ids carry the backend: ``test_x[sqlite]``, ``test_x[postgresql]``; select one with
``-k sqlite``.

With the environment variable ``CI`` set, an end-to-end test (marker ``e2e``, or any test
under tests/e2e) that is skipped fails instead: CI installs every real client, so a skip
there means a layer of the suite silently did not run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from store.db import Database
from tests.helpers.databases import POSTGRES_URL_ENV, DatabaseTemplates, Seed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "first_start: the gateway fixtures leave the database and home empty, so that "
        "create_app runs the real first start (bootstrap) instead of finding a copy",
    )
    config.addinivalue_line(
        "markers",
        "postgresql_only: database_url is only PostgreSQL (a deployment SQLite does not "
        "support, e.g. several processes on one database)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """database_url is parametrized here rather than by fixture params, so that a test
    marked postgresql_only does not get an SQLite case at all (a skipped one would count
    as a skipped end-to-end test in CI)."""
    if "database_url" not in metafunc.fixturenames:
        return
    params = _backends()
    if metafunc.definition.get_closest_marker("postgresql_only"):
        skip = pytest.mark.skip(reason=f"PostgreSQL only, and {POSTGRES_URL_ENV} is not set")
        params = [p for p in params if p.id == "postgresql"] or [
            pytest.param("postgresql", id="postgresql", marks=skip)
        ]
    metafunc.parametrize("database_url", params, indirect=True)


def _backends() -> list[Any]:
    params = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(POSTGRES_URL_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplates]:
    templates = DatabaseTemplates(
        tmp_path_factory.mktemp("database-templates"), os.environ.get(POSTGRES_URL_ENV)
    )
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, database_templates: DatabaseTemplates
) -> Iterator[str]:
    url = database_templates.empty(request.param, tmp_path)
    try:
        yield url
    finally:
        database_templates.drop(url)


@pytest.fixture
async def database(
    database_url: str, database_templates: DatabaseTemplates
) -> AsyncIterator[Database]:
    database_templates.copy_migrated(database_url)
    db = Database.create(database_url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def seed_gateway(request: pytest.FixtureRequest, database_templates: DatabaseTemplates) -> Seed:
    if request.node.get_closest_marker("first_start") is not None:
        return lambda config, prepared=None: None
    return database_templates.seed


E2E_DIR = Path(__file__).resolve().parent / "e2e"


def _end_to_end(item: pytest.Item) -> bool:
    return item.get_closest_marker("e2e") is not None or item.path.is_relative_to(E2E_DIR)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and os.environ.get("CI")
        and _end_to_end(item)
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI is set, so an end-to-end test must run, but it was skipped: {reason}"
