"""A read cache for configuration, shared by every request of one process.

Enrollment hot paths read the same handful of configuration rows on every request (the
application and profile by slug, the attachment and its protocol settings, the CA, the
policy, the approval policy, an API token). Each read is a transaction of its own; at
several per request they cost more CPU than signing the certificate. `ConfigCache.get`
memoizes such a read by key.

Freshness, without keeping any state that only one process knows:
- Database triggers raise `config_generation.value` on every write to a configuration
  table (store.tables_cache.CONFIG_TABLES, migration 0007), whoever writes. The cache
  compares it at most every `recheck_seconds` and drops everything when it moved, so a
  change made through another process (or psql) is seen within that bound.
- A write transaction of this process that touched a configuration table drops the cache
  after it commits (Database.transaction), so this process sees its own change at once.
- A loader that started before a drop does not store its (possibly older) result: every
  drop starts a new epoch and a result is kept only if its epoch is still current.

Only immutable values (frozen domain objects, tuples) may be cached; callers must not
cache anything a request writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from store.tables_cache import CONFIG_TABLES, config_generation

if TYPE_CHECKING:
    from store.db import Database, Tx

T = TypeVar("T")

_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")
_CONFIG_TABLES = frozenset(CONFIG_TABLES)


def writes_config(statement: str) -> bool:
    """Whether an SQL statement writes a configuration table (INSERT INTO t, UPDATE t,
    DELETE FROM t), from the statement text SQLAlchemy is about to execute."""
    head = statement.lstrip()[:6].upper()
    if head not in _WRITE_VERBS:
        return False
    words = statement.split(None, 3)
    if len(words) < 2:
        return False
    table = words[2] if words[1].upper() in ("INTO", "FROM") and len(words) > 2 else words[1]
    return table.strip('"').split("(", 1)[0] in _CONFIG_TABLES


class ConfigCache:
    """Memoized configuration reads; see the module docstring for the freshness rules."""

    def __init__(
        self, db: Database, *, recheck_seconds: float = 0.5, max_entries: int = 4096
    ) -> None:
        self._db = db
        self._recheck = recheck_seconds
        self._max = max_entries
        self._entries: dict[Hashable, Any] = {}
        self._epoch = 0
        self._generation: int | None = None
        self._checked_at = float("-inf")
        self._checking: asyncio.Lock | None = None
        self.hits = 0
        self.misses = 0

    def invalidate(self) -> None:
        self._entries.clear()
        self._epoch += 1

    async def get(self, key: Hashable, load: Callable[[Tx], Awaitable[T]]) -> T:
        """The cached value for `key`, or `load` run in a read-only transaction (and kept).
        Exceptions from `load` propagate and are not cached."""
        await self._revalidate()
        if key in self._entries:
            self.hits += 1
            value: T = self._entries[key]
            return value
        self.misses += 1
        epoch = self._epoch
        async with self._db.transaction(read_only=True) as tx:
            value = await load(tx)
        if epoch == self._epoch:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = value
        return value

    async def _revalidate(self) -> None:
        if time.monotonic() - self._checked_at < self._recheck:
            return
        if self._checking is None:
            self._checking = asyncio.Lock()
        if self._checking.locked():
            return  # another request is checking right now; this one uses what is cached
        async with self._checking:
            epoch = self._epoch
            async with self._db.transaction(read_only=True) as tx:
                current = await current_generation(tx)
            self._checked_at = time.monotonic()
            if current != self._generation:
                if epoch == self._epoch:
                    self.invalidate()
                self._generation = current


async def current_generation(tx: Tx) -> int:
    """The configuration generation as of this transaction (0 on a database the migration
    has not reached, which then never caches across a change: see Database)."""
    result = await tx.session.execute(
        select(config_generation.c.value).where(config_generation.c.id == 1)
    )
    value = result.scalar_one_or_none()
    return int(value) if value is not None else 0
