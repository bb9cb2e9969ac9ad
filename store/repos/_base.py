"""What every repository shares: the session, guarded inserts, integrity-error mapping."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.errors import Conflict, DomainError, InvalidInput
from gateway.core.model import Page

T = TypeVar("T")

_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_SQLITE_UNIQUE_NAMES = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
_SQLITE_FK_NAME = "SQLITE_CONSTRAINT_FOREIGNKEY"
_SQLITE_UNIQUE_MESSAGE = re.compile(r"UNIQUE constraint failed: (.+)$")
_SQLITE_INDEX_MESSAGE = re.compile(r"index '([^']+)'")


def _driver_error(err: IntegrityError) -> BaseException | None:
    """The driver's own exception: sqlite3's directly, asyncpg's behind SQLAlchemy's shim."""
    orig: Any = err.orig
    inner = getattr(orig, "orig", None) or getattr(orig, "__cause__", None)
    return inner if isinstance(inner, BaseException) else orig


def _unique_constraint_name(err: IntegrityError, table: Table) -> str | None:
    """Name of the violated unique constraint/index of `table`, or None if not unique."""
    orig: Any = err.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE:
        name = getattr(_driver_error(err), "constraint_name", None)
        return name if isinstance(name, str) else ""
    if getattr(orig, "sqlite_errorname", None) not in _SQLITE_UNIQUE_NAMES:
        return None
    # SQLite names the columns ("UNIQUE constraint failed: profiles.project_id,
    # profiles.slug"), or the index for expression indexes; map back to our name.
    message = str(orig)
    match = _SQLITE_UNIQUE_MESSAGE.search(message)
    if match is None:
        return ""
    index_match = _SQLITE_INDEX_MESSAGE.fullmatch(match.group(1).strip())
    if index_match:
        return index_match.group(1)
    columns = tuple(part.strip().rsplit(".", 1)[-1] for part in match.group(1).split(","))
    if tuple(c.name for c in table.primary_key.columns) == columns:
        return str(table.primary_key.name)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            if tuple(c.name for c in constraint.columns) == columns:
                return str(constraint.name)
    for index in table.indexes:
        if index.unique and tuple(c.name for c in index.columns) == columns:
            return str(index.name)
    return ""


def _is_foreign_key_violation(err: IntegrityError) -> bool:
    orig: Any = err.orig
    return (
        getattr(orig, "sqlstate", None) == _PG_FOREIGN_KEY
        or getattr(orig, "sqlite_errorname", None) == _SQLITE_FK_NAME
    )


def map_integrity_error(
    err: IntegrityError,
    table: Table,
    what: str,
    conflicts: Mapping[str, Callable[[], DomainError]],
) -> DomainError | None:
    """A domain error for a constraint violation on `table`, or None to re-raise as is.

    `conflicts` maps constraint/index names to the error to raise; an unlisted unique
    violation (e.g. a reused id) becomes a generic Conflict naming `what`.
    """
    name = _unique_constraint_name(err, table)
    if name is not None:
        factory = conflicts.get(name)
        if factory is not None:
            return factory()
        if name == table.primary_key.name:
            return Conflict(f"{what} with this id already exists")
        return Conflict(f"{what} conflicts with an existing one")
    if _is_foreign_key_violation(err):
        return InvalidInput(f"{what} refers to something that does not exist")
    return None


class Repository:
    """Base: one session (one transaction), shared by all repositories of a Tx."""

    table: Table
    what: str = "record"

    def __init__(self, session: AsyncConnection, dialect: str) -> None:
        self._session = session
        self._dialect = dialect

    async def _guarded(
        self,
        statement: Executable,
        conflicts: Mapping[str, Callable[[], DomainError]] | None = None,
    ) -> Any:
        """Execute a write inside a SAVEPOINT so that a constraint violation leaves the
        outer transaction usable (PostgreSQL aborts the whole transaction otherwise)."""
        try:
            async with self._session.begin_nested():
                return await self._session.execute(statement)
        except IntegrityError as err:
            mapped = map_integrity_error(err, self.table, self.what, conflicts or {})
            if mapped is None:
                raise
            raise mapped from err

    async def _insert(
        self,
        values: dict[str, Any],
        conflicts: Mapping[str, Callable[[], DomainError]] | None = None,
        *,
        keep_transaction: bool = True,
    ) -> None:
        """INSERT one row. keep_transaction=False skips the SAVEPOINT of `_guarded` (two
        statements fewer on the issuance path): a violation still raises the mapped error,
        but leaves a PostgreSQL transaction unusable, so only for inserts whose callers let
        the error end the transaction."""
        if keep_transaction:
            await self._guarded(insert(self.table).values(**values), conflicts)
            return
        try:
            # Values as parameters, not in the statement: one compiled statement per table.
            await self._session.execute(insert(self.table), values)
        except IntegrityError as err:
            mapped = map_integrity_error(err, self.table, self.what, conflicts or {})
            if mapped is None:
                raise
            raise mapped from err

    async def _upsert(
        self,
        values: dict[str, Any],
        key: Sequence[str],
        conflicts: Mapping[str, Callable[[], DomainError]] | None = None,
    ) -> RowMapping:
        """INSERT … ON CONFLICT (key) DO UPDATE SET every other column; returns the row."""
        dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = dialect_insert(self.table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={k: statement.excluded[k] for k in values if k not in key},
        )
        result = await self._guarded(statement.returning(*self.table.c), conflicts)
        row: RowMapping = result.mappings().one()
        return row

    async def _one(self, statement: Select[Any]) -> RowMapping | None:
        result = await self._session.execute(statement)
        row: RowMapping | None = result.mappings().one_or_none()
        return row

    async def _all(self, statement: Select[Any]) -> Sequence[RowMapping]:
        result = await self._session.execute(statement)
        rows: Sequence[RowMapping] = result.mappings().all()
        return rows

    async def _update_returning(
        self,
        statement: Executable,
        conflicts: Mapping[str, Callable[[], DomainError]] | None = None,
    ) -> RowMapping | None:
        result = await self._guarded(statement, conflicts)
        row: RowMapping | None = result.mappings().one_or_none()
        return row

    async def _get_by(self, *where: ColumnElement[bool]) -> RowMapping | None:
        return await self._one(select(self.table).where(*where))

    async def _page(
        self,
        where: Sequence[ColumnElement[bool]],
        order_by: Sequence[Any],
        limit: int,
        offset: int,
        convert: Callable[[RowMapping], T],
    ) -> Page[T]:
        if limit < 0 or offset < 0:
            raise InvalidInput("limit and offset must not be negative")
        count = select(func.count()).select_from(self.table).where(*where)
        total = (await self._session.execute(count)).scalar_one()
        rows = await self._all(
            select(self.table).where(*where).order_by(*order_by).limit(limit).offset(offset)
        )
        return Page(
            items=tuple(convert(r) for r in rows), total=int(total), limit=limit, offset=offset
        )
