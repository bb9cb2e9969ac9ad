"""SCEP challenges and transactions (store.tables_scep)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from gateway.core.scep import (
    FailInfo,
    MessageType,
    ScepChallenge,
    ScepTransaction,
    TransactionState,
)
from store.repos._base import Repository
from store.tables_scep import scep_challenges as _t_ch
from store.tables_scep import scep_transactions as _t_tx

# Every PKCSReq runs get, claim and update once: built once here, with bound parameters,
# so SQLAlchemy neither rebuilds them nor recomputes their cache keys per request.
_GET = select(_t_tx).where(
    _t_tx.c.scope == bindparam("scope"),
    _t_tx.c.transaction_id == bindparam("transaction_id"),
    _t_tx.c.request_key == bindparam("request_key"),
)
_CLAIM = {
    name: insert(_t_tx)
    .on_conflict_do_nothing(index_elements=["scope", "transaction_id", "request_key"])
    .returning(_t_tx.c.id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_UPDATED = [c.name for c in _t_tx.columns if c.name != "id"]
_UPDATE = (
    update(_t_tx)
    .where(_t_tx.c.id == bindparam("where_id"))
    .values({name: bindparam(name) for name in _UPDATED})
    .returning(_t_tx.c.id)
)
_UPDATE_IF = (
    update(_t_tx)
    .where(_t_tx.c.id == bindparam("where_id"), _t_tx.c.state == bindparam("where_state"))
    .values({name: bindparam(name) for name in _UPDATED})
    .returning(_t_tx.c.id)
)


def _transaction(row: RowMapping) -> ScepTransaction:
    fail_info = row["fail_info"]
    return ScepTransaction(
        id=row["id"],
        scope=row["scope"],
        transaction_id=row["transaction_id"],
        request_key=row["request_key"],
        message_type=MessageType(row["message_type"]),
        csr_digest=row["csr_digest"],
        csr_der=bytes(row["csr_der"]),
        requester=row["requester"],
        renewed_from=row["renewed_from"],
        state=TransactionState(row["state"]),
        certificate_id=row["certificate_id"],
        request_id=row["request_id"],
        fail_info=FailInfo(fail_info) if fail_info is not None else None,
        reason=row["reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _values(record: ScepTransaction) -> dict[str, object]:
    return {
        "id": record.id,
        "scope": record.scope,
        "transaction_id": record.transaction_id,
        "request_key": record.request_key,
        "message_type": int(record.message_type),
        "csr_digest": record.csr_digest,
        "csr_der": record.csr_der,
        "requester": record.requester,
        "renewed_from": record.renewed_from,
        "state": record.state.value,
        "certificate_id": record.certificate_id,
        "request_id": record.request_id,
        "fail_info": int(record.fail_info) if record.fail_info is not None else None,
        "reason": record.reason,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


class ScepRepository(Repository):
    table = _t_tx
    what = "SCEP transaction"

    # ---- dynamic challenges -----------------------------------------------------------

    async def add_challenge(self, challenge: ScepChallenge) -> None:
        statement = (pg_insert if self._dialect == "postgresql" else sqlite_insert)(_t_ch).values(
            id=challenge.id,
            scope=challenge.scope,
            digest=challenge.digest,
            created_by=challenge.created_by,
            created_at=challenge.created_at,
            expires_at=challenge.expires_at,
            consumed_at=challenge.consumed_at,
        )
        await self._session.execute(statement)

    async def consume_challenge(self, scope: str, digest: str, now: datetime) -> bool:
        """Mark an unexpired, unused challenge used. The WHERE makes it exactly-once: of
        concurrent consumers only one UPDATE matches the row (the others see it consumed
        once the first commits; PostgreSQL re-checks the condition after the row lock)."""
        result = await self._session.execute(
            update(_t_ch)
            .where(
                _t_ch.c.scope == scope,
                _t_ch.c.digest == digest,
                _t_ch.c.consumed_at.is_(None),
                _t_ch.c.expires_at > now,
            )
            .values(consumed_at=now)
            .returning(_t_ch.c.id)
        )
        return result.first() is not None

    async def count_unused_challenges(self, scope: str, now: datetime) -> int:
        total = await self._session.execute(
            select(func.count())
            .select_from(_t_ch)
            .where(_t_ch.c.scope == scope, _t_ch.c.consumed_at.is_(None), _t_ch.c.expires_at > now)
        )
        return int(total.scalar_one())

    async def purge_challenges(self, scope: str, now: datetime) -> int:
        """Forget used and expired challenges of `scope`; returns how many."""
        result = await self._session.execute(
            delete(_t_ch)
            .where(
                _t_ch.c.scope == scope,
                (_t_ch.c.consumed_at.is_not(None)) | (_t_ch.c.expires_at <= now),
            )
            .returning(_t_ch.c.id)
        )
        return len(result.all())

    # ---- transactions -----------------------------------------------------------------

    async def claim(self, record: ScepTransaction) -> bool:
        """Insert unless (scope, transactionID, request key) exists; False when it does."""
        result = await self._session.execute(_CLAIM[self._dialect], _values(record))
        return result.first() is not None

    async def get(self, scope: str, transaction_id: str, key: str) -> ScepTransaction | None:
        result = await self._session.execute(
            _GET, {"scope": scope, "transaction_id": transaction_id, "request_key": key}
        )
        row = result.mappings().one_or_none()
        return _transaction(row) if row else None

    async def latest(self, scope: str, transaction_id: str) -> ScepTransaction | None:
        """The newest enrollment with this transactionID (what a CertPoll asks about)."""
        row = await self._one(
            select(_t_tx)
            .where(_t_tx.c.scope == scope, _t_tx.c.transaction_id == transaction_id)
            .order_by(_t_tx.c.created_at.desc())
            .limit(1)
        )
        return _transaction(row) if row else None

    async def update(
        self, record: ScepTransaction, expected: TransactionState | None = None
    ) -> bool:
        """Store `record` (by id); with `expected`, only if the row is still in that state."""
        values = _values(record)
        values["where_id"] = values.pop("id")
        statement = _UPDATE
        if expected is not None:
            values["where_state"] = expected.value
            statement = _UPDATE_IF
        result = await self._session.execute(statement, values)
        return result.first() is not None

    async def delete(self, record_id: uuid.UUID) -> None:
        await self._session.execute(delete(_t_tx).where(_t_tx.c.id == record_id))
