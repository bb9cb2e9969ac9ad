"""The database handle and its unit of work.

    db = Database.create("sqlite+aiosqlite:///.certgate/certgate.db")
    async with db.transaction() as tx:          # commits on normal exit, rolls back on error
        await tx.certificates.add(cert)
        await tx.audit.add(event)

SQLite write serialization: pysqlite's own transaction handling is switched off and every
transaction starts with `BEGIN IMMEDIATE` (SQLAlchemy's documented recipe for taking
over BEGIN, with IMMEDIATE instead of the default DEFERRED). The write lock is therefore
taken up front, where SQLite's busy handler (busy_timeout) waits for it, instead of on the
first write inside a deferred transaction, where a lock upgrade fails at once with
"database is locked" whenever another writer got in between. With WAL, readers are never
blocked; `transaction(read_only=True)` uses a plain deferred BEGIN so that reads do not
queue behind writers at all (do not write in those).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

from store import sqlite_inline
from store.cache import ConfigCache, writes_config
from store.repos import (
    ApplicationRepository,
    AttachmentRepository,
    AuditRepository,
    CARepository,
    CertificateRepository,
    CrlRepository,
    OrganizationRepository,
    PolicyRepository,
    PrincipalRepository,
    ProfileRepository,
    ProjectRepository,
    SecretRepository,
    TokenRepository,
)
from store.repos.acme import AcmeRepository
from store.repos.alerts import (
    AlertRepository,
    DeliveryRepository,
    ExpiryRepository,
    LeaseRepository,
)
from store.repos.approvals import ApprovalPolicyRepository, RequestRepository
from store.repos.members import MemberRepository
from store.repos.scep import ScepRepository

if TYPE_CHECKING:
    from gateway.core.ports import TransactionFactory, UnitOfWork

T = TypeVar("T")

# Execution option read by the SQLite "begin" hook; set to DEFERRED for read-only work.
_SQLITE_BEGIN = "certgate_sqlite_begin"
_SQLITE_BEGIN_MODES = {"IMMEDIATE", "DEFERRED"}
SQLITE_BUSY_TIMEOUT_MS = 10_000
_INLINE_BUSY_TIMEOUT_MS = 20
_SQLITE_PRAGMAS = (
    # busy_timeout first: switching to WAL needs a lock another connection may hold.
    f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "journal_mode=WAL",
    "foreign_keys=ON",
    "synchronous=NORMAL",
)

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str | URL) -> URL:
    """Accept `sqlite:///…` and `postgresql://…` too, meaning their async drivers."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from issuing its own (deferred, DML-only) BEGIN; _sqlite_on_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_on_connect_inline(dbapi_connection: Any, record: Any) -> None:
    _sqlite_on_connect(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    try:
        # Any wait for another process's lock would stop the event loop: keep SQLite's
        # own wait short; BEGIN IMMEDIATE waits on the loop instead (store.sqlite_inline).
        cursor.execute(f"PRAGMA busy_timeout={_INLINE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_mode(conn: Connection) -> str:
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"bad {_SQLITE_BEGIN} option {mode!r}")
    return str(mode)


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(f"BEGIN {_begin_mode(conn)}")


def _sqlite_on_begin_inline(conn: Connection) -> None:
    mode = _begin_mode(conn)
    if mode == "IMMEDIATE":
        sqlite_inline.begin_immediate(conn, SQLITE_BUSY_TIMEOUT_MS / 1000, _INLINE_BUSY_TIMEOUT_MS)
    else:
        conn.exec_driver_sql(f"BEGIN {mode}")


# Connection.info flag: this transaction wrote a configuration table (see store.cache).
_CONFIG_WRITTEN = "certgate_config_written"


def _note_config_write(
    conn: Connection, _cursor: Any, statement: str, *_args: Any, **_kw: Any
) -> None:
    if writes_config(statement):
        conn.info[_CONFIG_WRITTEN] = True


def create_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """An async engine with certgate's connection settings (see the module docstring)."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        inline = database not in (None, "", ":memory:") and not str(database).startswith("file:")
        options: dict[str, Any] = {"echo": echo, "pool_size": 5, "max_overflow": 15}
        if inline and database is not None:
            # On the loop's thread (store.sqlite_inline); BEGIN IMMEDIATE waits there.
            options["async_creator"] = sqlite_inline.creator(database)
        engine = create_async_engine(parsed, **options)
        event.listen(
            engine.sync_engine,
            "connect",
            _sqlite_on_connect_inline if inline else _sqlite_on_connect,
        )
        event.listen(
            engine.sync_engine, "begin", _sqlite_on_begin_inline if inline else _sqlite_on_begin
        )
        return engine
    if backend == "postgresql":
        return create_async_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_recycle=1800,
        )
    raise ValueError(f"unsupported database {parsed.drivername!r}; use sqlite or postgresql")


class Tx:
    """One transaction (one connection) and the repositories that work inside it.

    Satisfies gateway.core.ports.UnitOfWork. `session` (the AsyncConnection) is there for
    the rare query no repository offers; prefer adding a repository method. Repositories
    are made on first use: most transactions touch one or two of them. Core connections,
    not ORM sessions: there are no mapped classes, and a session's unit-of-work machinery
    costs about a third more CPU per statement.
    """

    def __init__(self, session: AsyncConnection, dialect: str) -> None:
        self.session = session
        self._dialect = dialect

    @cached_property
    def organizations(self) -> OrganizationRepository:
        return OrganizationRepository(self.session, self._dialect)

    @cached_property
    def projects(self) -> ProjectRepository:
        return ProjectRepository(self.session, self._dialect)

    @cached_property
    def cas(self) -> CARepository:
        return CARepository(self.session, self._dialect)

    @cached_property
    def policies(self) -> PolicyRepository:
        return PolicyRepository(self.session, self._dialect)

    @cached_property
    def profiles(self) -> ProfileRepository:
        return ProfileRepository(self.session, self._dialect)

    @cached_property
    def applications(self) -> ApplicationRepository:
        return ApplicationRepository(self.session, self._dialect)

    @cached_property
    def attachments(self) -> AttachmentRepository:
        return AttachmentRepository(self.session, self._dialect)

    @cached_property
    def certificates(self) -> CertificateRepository:
        return CertificateRepository(self.session, self._dialect)

    @cached_property
    def principals(self) -> PrincipalRepository:
        return PrincipalRepository(self.session, self._dialect)

    @cached_property
    def tokens(self) -> TokenRepository:
        return TokenRepository(self.session, self._dialect)

    @cached_property
    def secrets(self) -> SecretRepository:
        return SecretRepository(self.session, self._dialect)

    @cached_property
    def crls(self) -> CrlRepository:
        return CrlRepository(self.session, self._dialect)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.session, self._dialect)

    @cached_property
    def members(self) -> MemberRepository:
        return MemberRepository(self.session, self._dialect)

    @cached_property
    def approval_policies(self) -> ApprovalPolicyRepository:
        return ApprovalPolicyRepository(self.session, self._dialect)

    @cached_property
    def requests(self) -> RequestRepository:
        return RequestRepository(self.session, self._dialect)

    @cached_property
    def acme(self) -> AcmeRepository:
        return AcmeRepository(self.session, self._dialect)

    @cached_property
    def scep(self) -> ScepRepository:
        return ScepRepository(self.session, self._dialect)

    @cached_property
    def alerts(self) -> AlertRepository:
        return AlertRepository(self.session, self._dialect)

    @cached_property
    def deliveries(self) -> DeliveryRepository:
        return DeliveryRepository(self.session, self._dialect)

    @cached_property
    def expiry(self) -> ExpiryRepository:
        return ExpiryRepository(self.session, self._dialect)

    @cached_property
    def leases(self) -> LeaseRepository:
        return LeaseRepository(self.session, self._dialect)


class Database:
    """An engine plus transactions over it. Create with `Database.create(url)`;
    `await close()` when done. Implements gateway.core.ports.TransactionFactory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        read_engine = engine
        if self._dialect == "sqlite":
            read_engine = engine.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})
        elif self._dialect == "postgresql":
            read_engine = engine.execution_options(postgresql_readonly=True)
        self._read_engine = read_engine
        self._write_lock = asyncio.Lock() if self._dialect == "sqlite" else None
        self.cache = ConfigCache(self)
        event.listen(engine.sync_engine, "before_cursor_execute", _note_config_write)

    async def cached(self, key: Hashable, load: Callable[[Tx], Awaitable[T]]) -> T:
        """A configuration read through the process's read cache (store.cache)."""
        return await self.cache.get(key, load)

    @classmethod
    def create(cls, url: str, *, echo: bool = False) -> Database:
        return cls(create_engine(url, echo=echo))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        """The dialect name: "sqlite" or "postgresql"."""
        return self._dialect

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[Tx]:
        """One transaction: commits when the block exits normally, rolls back on error.

        read_only=True: PostgreSQL runs it READ ONLY; SQLite uses a deferred BEGIN so it
        never waits for writers. Never write inside one.
        """
        if read_only:
            async with self._read_engine.connect() as conn, conn.begin():
                yield Tx(conn, self._dialect)
            return
        async with self._writer_turn(), self._engine.connect() as conn:
            # A rolled-back transaction may have left the flag on this pooled connection.
            conn.info.pop(_CONFIG_WRITTEN, None)
            async with conn.begin():
                yield Tx(conn, self._dialect)
                wrote_config = conn.info.pop(_CONFIG_WRITTEN, False)
            # After the commit, so that nothing this process reads next is older than it.
            if wrote_config:
                self.cache.invalidate()

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """SQLite: one write transaction of this process at a time, queued on the event
        loop (FIFO, no polling) instead of in SQLite's sleeping busy handler. Other
        processes are still kept out by BEGIN IMMEDIATE + busy_timeout."""
        if self._write_lock is None:
            yield
            return
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                await self._write_lock.acquire()
        except TimeoutError as err:
            raise TimeoutError(
                "timed out waiting for the SQLite write lock "
                "(is a write transaction opened inside another one?)"
            ) from err
        try:
            yield
        finally:
            self._write_lock.release()

    async def ping(self) -> None:
        """SELECT 1; raises if the database cannot be reached."""
        async with self._read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()


if TYPE_CHECKING:

    def _conforms(tx: Tx, db: Database) -> tuple[UnitOfWork, TransactionFactory[Tx]]:
        return tx, db
