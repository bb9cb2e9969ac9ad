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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
from store.repos.approvals import ApprovalPolicyRepository, RequestRepository
from store.repos.members import MemberRepository
from store.repos.scep import ScepRepository

if TYPE_CHECKING:
    from gateway.core.ports import TransactionFactory, UnitOfWork

# Execution option read by the SQLite "begin" hook; set to DEFERRED for read-only work.
_SQLITE_BEGIN = "certgate_sqlite_begin"
_SQLITE_BEGIN_MODES = {"IMMEDIATE", "DEFERRED"}
SQLITE_BUSY_TIMEOUT_MS = 10_000
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


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"bad {_SQLITE_BEGIN} option {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """An async engine with certgate's connection settings (see the module docstring)."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, echo=echo, pool_size=5, max_overflow=15)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
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
    """One transaction (one AsyncSession) and the repositories that work inside it.

    Satisfies gateway.core.ports.UnitOfWork. `session` is there for the rare query no
    repository offers; prefer adding a repository method.
    """

    def __init__(self, session: AsyncSession, dialect: str) -> None:
        self.session = session
        self.organizations = OrganizationRepository(session, dialect)
        self.projects = ProjectRepository(session, dialect)
        self.cas = CARepository(session, dialect)
        self.policies = PolicyRepository(session, dialect)
        self.profiles = ProfileRepository(session, dialect)
        self.applications = ApplicationRepository(session, dialect)
        self.attachments = AttachmentRepository(session, dialect)
        self.certificates = CertificateRepository(session, dialect)
        self.principals = PrincipalRepository(session, dialect)
        self.tokens = TokenRepository(session, dialect)
        self.secrets = SecretRepository(session, dialect)
        self.crls = CrlRepository(session, dialect)
        self.audit = AuditRepository(session, dialect)
        self.members = MemberRepository(session, dialect)
        self.approval_policies = ApprovalPolicyRepository(session, dialect)
        self.requests = RequestRepository(session, dialect)
        self.acme = AcmeRepository(session, dialect)
        self.scep = ScepRepository(session, dialect)


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
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self._dialect == "sqlite" else None

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
            async with self._read_sessions() as session, session.begin():
                yield Tx(session, self._dialect)
            return
        async with self._writer_turn(), self._sessions() as session, session.begin():
            yield Tx(session, self._dialect)

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

    def _conforms(tx: Tx, db: Database) -> tuple[UnitOfWork, TransactionFactory]:
        return tx, db
