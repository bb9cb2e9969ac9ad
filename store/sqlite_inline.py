"""SQLite for SQLAlchemy's aiosqlite dialect, run on the event loop's own thread.

aiosqlite runs every call (cursor, execute, fetch, close, commit, the pool's reset) on a
worker thread and wakes the loop for each result: a dozen thread hand-offs per
transaction, which cost more CPU than the statements themselves (an SQLite statement on
a local WAL database takes microseconds). The embedded default database is local and
its writers are serialized in-process anyway (store.db), so this module gives the
dialect an object with aiosqlite's interface whose coroutines call sqlite3 directly and
return without suspending.

What could block the loop is waiting for a lock another process holds. Readers never
wait in WAL mode; a writer takes its lock up front with BEGIN IMMEDIATE (store.db),
which runs with a zero busy timeout and, when the database is busy, sleeps on the event
loop and tries again (`begin_immediate`). Statements inside a transaction that holds the
write lock do not wait for other processes.

Used for file databases only; `:memory:` keeps aiosqlite (each inline connection would
open a separate in-memory database).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.util.concurrency import await_

# Connection.info key: this connection is an inline one (store.db's begin hook asks).
INLINE = "certgate_sqlite_inline"


class _Cursor:
    """aiosqlite.Cursor's interface over a sqlite3 cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class _CursorContext:
    """What aiosqlite.Connection.cursor() returns: awaitable and an async context."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> _Cursor:
        return _Cursor(self._connection.cursor())

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _Immediate:
    """aiosqlite's private request queue, as the dialect's isolation_level setter uses it:
    (future, function) pairs, run here at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as err:  # handed to the awaiting dialect code
            future.set_exception(err)


class InlineConnection:
    """aiosqlite.Connection's interface (as SQLAlchemy's aiosqlite dialect uses it)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _Immediate()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _CursorContext:
        return _CursorContext(self._conn)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Cursor:
        return await _Cursor(self._conn.cursor()).execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def creator(path: str) -> Callable[[], Any]:
    """The `async_creator` for create_async_engine: inline connections to `path`."""

    async def connect() -> InlineConnection:
        # The pool may hand a connection to whichever task runs on the loop, and dispose
        # may close it from a finalizer: not bound to the creating thread.
        return InlineConnection(sqlite3.connect(path, check_same_thread=False))

    return connect


def begin_immediate(conn: Connection, timeout_s: float, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE that waits for another process's write lock on the event loop, not
    in SQLite's sleeping busy handler (which would stop the whole loop). The first try
    uses the connection's short busy timeout; while retrying it is 0, so each try only
    looks."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    waited = False
    try:
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except Exception as err:
                if "database is locked" not in str(err) or time.monotonic() >= deadline:
                    raise
            if not waited:
                waited = True
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
            await_(asyncio.sleep(delay))
            delay = min(delay * 2, 0.05)
    finally:
        if waited:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_timeout_ms}")
