"""Test databases built once per test run and copied per test.

Migrating an empty database and running the first-start bootstrap (root and issuing CA,
demo application, protocol secrets, hashed passwords) costs about half a second; copying
the result costs milliseconds. So, once per test run (per pytest-xdist worker), each
backend gets

* a *migrated* template: what `store.migrate.upgrade` leaves in an empty database;
* one *bootstrapped* template per kind of configuration: what a real first start of
  `create_app(config)` leaves in the database and in CERTGATE_HOME (`root.key`, which
  wraps the per-project KMS keys and so must travel with the database, `bootstrap.json`,
  `root-ca.pem`);
* on request, templates of a state a fixture brings every test's gateway into through
  the gateway's API after the first start (`Prepared`, e.g. EST enabled with a password).

and each test gets a copy: SQLite by copying the file, PostgreSQL by
`CREATE DATABASE <test> TEMPLATE <template>` (a template must have no open connection
while it is copied, so every engine that built one is disposed first).

Bootstrapped templates are keyed by the whole configuration except what cannot reach the
bootstrap (home and database location, ACME validation ports and resolvers, trusted
proxies): the base URL, for one, is in every CA certificate's CRL and AIA URLs and in
bootstrap.json. The only home-dependent value, bootstrap.json's `root_ca_path`, is
rewritten for the test's home.

PostgreSQL databases are named `<base>_<worker>_<n>` after the database in
CERTGATE_TEST_DATABASE_URL (which is only used to connect for CREATE/DROP DATABASE);
databases of this worker left over by a run that crashed are dropped when the next run
starts, so two runs must not share one base database at the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.config import AcmeConfig, Config
from store.migrate import upgrade

T = TypeVar("T")

POSTGRES_URL_ENV = "CERTGATE_TEST_DATABASE_URL"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# Files of the home that a first start writes and that must match the database.
BOOTSTRAP_JSON = "bootstrap.json"


def run_in_new_loop(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on an event loop of its own, in a thread of its own: callers may be
    fixtures running inside a test's loop, which must not be re-entered or blocked on."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[1].split("?", 1)[0])


class SqliteDatabases:
    """Files: a template is a file in the run's template directory."""

    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root

    def empty(self, tmp_path: Path) -> str:
        # SQLite creates the file on first use (gateway.services makes it 0600 first).
        return f"sqlite+aiosqlite:///{tmp_path}/certgate.db"

    def template_url(self, label: str) -> str:
        return f"sqlite+aiosqlite:///{self.root}/{label}.db"

    def copy(self, template_url: str, url: str) -> None:
        source, target = sqlite_path(template_url), sqlite_path(url)
        for suffix in ("-wal", "-shm", "-journal"):
            # Every connection to a template is closed before it is copied, and closing
            # the last one checkpoints the WAL into the file; a leftover would mean a
            # template still in use.
            assert not Path(f"{source}{suffix}").exists(), f"template {source} is open"
        if target.exists() and target.stat().st_size:
            raise AssertionError(f"{target} is in use; a test database is filled only once")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)  # keeps the 0600 the gateway gave the template

    def drop(self, url: str) -> None:
        """Files go with the test's tmp_path."""

    def close(self) -> None:
        """Templates go with the run's basetemp."""


class PostgresDatabases:
    """Databases beside the one in CERTGATE_TEST_DATABASE_URL, created and dropped over
    one maintenance connection that lives on a thread and loop of its own."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        base = re.sub(r"[^a-z0-9_]", "_", (self.url.database or "certgate").lower())
        worker = re.sub(r"[^a-z0-9_]", "_", WORKER.lower())
        # PostgreSQL names are at most 63 bytes; room is left for "_<n>".
        self.prefix = f"{base[:40]}_{worker[:12]}"
        self._count = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-databases", daemon=True
        )
        self._thread.start()
        self._conn: asyncpg.Connection = self._run(self._connect())
        self._drop_leftovers()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.url.host or "127.0.0.1",
            port=self.url.port or 5432,
            user=self.url.username,
            password=self.url.password,
            database=self.url.database,
        )

    def _execute(self, sql: str) -> None:
        self._run(self._conn.execute(sql))

    def _drop_leftovers(self) -> None:
        rows = self._run(
            self._conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                self.prefix.replace("_", r"\_") + r"\_%",
            )
        )
        for row in rows:
            self._execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')

    def _new_name(self, label: str) -> str:
        self._count += 1
        return f"{self.prefix}_{label}{self._count}"

    def _url(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def empty(self, tmp_path: Path) -> str:
        name = self._new_name("t")
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self._url(name)

    def template_url(self, label: str) -> str:
        return self.empty(Path())

    def copy(self, template_url: str, url: str) -> None:
        source, target = make_url(template_url).database, make_url(url).database
        # No FORCE: a connection to the test database at this point is a fixture bug.
        self._execute(f'DROP DATABASE IF EXISTS "{target}"')
        self._execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')

    def drop(self, url: str) -> None:
        # FORCE: a test may end with a connection its engine did not close yet.
        self._execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def close(self) -> None:
        try:
            self._drop_leftovers()
            self._run(self._conn.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


Backend = SqliteDatabases | PostgresDatabases


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A state that a fixture brings a first-started gateway into through the gateway's
    own API (say, EST enabled with a fresh password). Like the bootstrap, it is recorded
    once per run and kind of configuration, and copied per test; `run` gets a client of
    the template's gateway and its bootstrap.json, and returns what the fixture needs to
    know about the state (say, that password), as JSON-able data."""

    name: str
    run: Callable[[TestClient, dict[str, Any]], Awaitable[dict[str, Any]]]


class Seed(Protocol):
    """The `seed_gateway` fixture (tests/conftest.py). None when nothing was copied (the
    test is marked first_start, or an earlier gateway of the test seeded its database):
    then the fixture makes the prepared state itself."""

    def __call__(
        self, config: Config, prepared: Prepared | None = None
    ) -> dict[str, Any] | None: ...


@dataclasses.dataclass(frozen=True)
class Template:
    url: str
    home: Path
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


def bootstrap_key(config: Config) -> str:
    """The configuration with only what cannot reach a first start neutralized."""
    neutral = dataclasses.replace(
        config,
        home=Path("<home>"),
        database=dataclasses.replace(config.database, url=backend_of(config.database_url)),
        acme=AcmeConfig(),
        server=dataclasses.replace(config.server, trusted_proxies=[], client_cert_header=""),
    )
    return repr(neutral)


async def first_start(config: Config) -> None:
    """What `certgate serve` does before it listens: create_app's startup and cleanup."""
    runner = web.AppRunner(create_app(config, background=False))
    await runner.setup()
    await runner.cleanup()


async def prepare(config: Config, prepared: Prepared) -> dict[str, Any]:
    """Start the gateway of `config` (already bootstrapped) and run `prepared` against it."""
    client = TestClient(TestServer(create_app(config, background=False)))
    await client.start_server()
    try:
        bootstrap = json.loads((config.home / BOOTSTRAP_JSON).read_text())
        return await prepared.run(client, bootstrap)
    finally:
        await client.close()


def copy_home(source: Path, target: Path, database_url: str) -> None:
    """The files a start left in home `source`, into the fresh home `target`; the one
    home-dependent value, bootstrap.json's root_ca_path, follows the home."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    source_path, target_path = str(source.resolve()), str(target.resolve())
    db_file = sqlite_path(database_url).resolve() if database_url.startswith("sqlite") else None
    for path in sorted(source.iterdir()):
        copy = target / path.name
        if db_file is not None and str(copy.resolve()).startswith(str(db_file)):
            continue  # an embedded database in the home is copied as a database
        assert not copy.exists(), f"{copy} exists before the first start"
        shutil.copy2(path, copy)  # modes (0600 for secrets) included
        if path.name == BOOTSTRAP_JSON:
            copy.write_text(path.read_text().replace(source_path, target_path))


class DatabaseTemplates:
    """The run's templates (one set per pytest-xdist worker) and the per-test copies."""

    def __init__(self, root: Path, postgres_url: str | None) -> None:
        self.root = root
        self.backends: dict[str, Backend] = {"sqlite": SqliteDatabases(root)}
        if postgres_url:
            self.backends["postgresql"] = PostgresDatabases(postgres_url)
        self._migrated: dict[str, str] = {}
        self._templates: dict[tuple[str, str], Template] = {}
        self._seeded: set[str] = set()
        self._unused: list[str] = []
        self._builds = 0

    def close(self) -> None:
        self._drop_unused()
        for backend in self.backends.values():
            backend.close()

    def backend(self, url: str) -> Backend:
        return self.backends[backend_of(url)]

    def empty(self, backend: str, tmp_path: Path) -> str:
        """A URL of an empty, unmigrated database of its own."""
        self._drop_unused()
        return self.backends[backend].empty(tmp_path)

    def drop(self, url: str) -> None:
        """Drop the database once the test is over. Not at once: pytest tears a test's
        fixtures down in the reverse order of their setup, and a client fixture set up
        before `database_url` (pytest-aiohttp's `aiohttp_client`, a factory) closes the
        gateway, and with it the gateway's connections, after `database_url` is torn down."""
        self._seeded.discard(url)
        self._unused.append(url)

    def _drop_unused(self) -> None:
        while self._unused:
            url = self._unused.pop()
            self.backend(url).drop(url)

    def migrated(self, backend: str) -> str:
        if backend not in self._migrated:
            url = self.backends[backend].template_url("migrated")
            run_in_new_loop(lambda: upgrade(url))
            self._migrated[backend] = url
        return self._migrated[backend]

    def copy_migrated(self, url: str) -> None:
        """Fill the (empty) database at `url` with a migrated, empty schema."""
        self.backend(url).copy(self.migrated(backend_of(url)), url)

    def template(self, config: Config, prepared: Prepared | None = None) -> Template:
        """The first start of `config` (then `prepared`), built on first use."""
        key = (bootstrap_key(config), prepared.name if prepared else "")
        if key in self._templates:
            return self._templates[key]
        backend = self.backend(config.database_url)
        self._builds += 1
        label = f"{backend.name}-{self._builds}"
        url = backend.template_url(label)
        home = self.root / f"{label}-home"
        template_config = dataclasses.replace(
            config,
            home=home,
            database=dataclasses.replace(config.database, url=url),
            # Copied, so that the template never shares a list with the test's config.
            server=dataclasses.replace(config.server),
        )
        data: dict[str, Any] = {}
        if prepared is None:
            backend.copy(self.migrated(backend.name), url)
            run_in_new_loop(lambda: first_start(template_config))
            assert (home / BOOTSTRAP_JSON).exists(), "the first start did not bootstrap"
        else:
            started = self.template(config)
            backend.copy(started.url, url)
            copy_home(started.home, home, url)
            data = run_in_new_loop(lambda: prepare(template_config, prepared))
        self._templates[key] = Template(url, home, data)
        return self._templates[key]

    def seed(self, config: Config, prepared: Prepared | None = None) -> dict[str, Any] | None:
        """Give `config`'s (empty) database and home what a first start of
        create_app(config), then `prepared`, leaves there, copied from a template; return
        the data `prepared` returned.

        A second gateway of the same test on the same database is a later start: it
        finds everything in place, so nothing is copied again, and None says that the
        fixture must make its prepared state itself, as it would have without templates."""
        if config.database_url in self._seeded:
            return None
        self._seeded.add(config.database_url)
        template = self.template(config, prepared)
        self.backend(config.database_url).copy(template.url, config.database_url)
        copy_home(template.home, config.home, config.database_url)
        return dict(template.data)
