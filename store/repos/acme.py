"""ACME accounts, orders, authorizations, challenges and nonces.

Implements gateway.core.acme.AcmeRepositoryPort. Status changes are compare-and-set
(`UPDATE … WHERE status IN (expected)`), so two processes racing on one order or challenge
cannot both move it: the loser sees False and re-reads.

The statements of the request path are built once, at import, with bind parameters
(values travel as parameters, never inside the statement): SQLAlchemy then neither
rebuilds the statement nor recomputes its cache key per call, which was most of the CPU an
ACME request spent in this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.dml import Update

from gateway.core.acme import (
    Account,
    AccountStatus,
    Authorization,
    AuthzStatus,
    Challenge,
    ChallengeStatus,
    ChallengeType,
    Identifier,
    IdentifierType,
    Order,
    OrderStatus,
    Problem,
    normalize,
)
from gateway.core.errors import Conflict
from store.repos._base import Repository
from store.tables_acme import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_orders,
    acme_used_nonces,
)

_ACCOUNT_KEY = "uq_acme_accounts_scope_thumbprint"


def _problem_json(problem: Problem | None) -> dict[str, Any] | None:
    if problem is None:
        return None
    out: dict[str, Any] = {"type": problem.type, "detail": problem.detail}
    if problem.identifier is not None:
        out["identifier"] = _identifier_json(problem.identifier)
    return out


def _problem(data: dict[str, Any] | None) -> Problem | None:
    if not data:
        return None
    ident = data.get("identifier")
    return Problem(data["type"], data["detail"], _identifier(ident) if ident else None)


def _identifier_json(identifier: Identifier) -> dict[str, str]:
    return {"type": identifier.type.value, "value": identifier.value}


def _identifier(data: dict[str, str]) -> Identifier:
    return Identifier(IdentifierType(data["type"]), data["value"])


def _account(row: RowMapping) -> Account:
    return Account(
        id=row["id"],
        scope=row["scope"],
        thumbprint=row["thumbprint"],
        jwk=dict(row["jwk"]),
        status=AccountStatus(row["status"]),
        contact=tuple(row["contact"]),
        eab_kid=row["eab_kid"],
        created_at=row["created_at"],
    )


def _order(row: RowMapping) -> Order:
    return Order(
        id=row["id"],
        account_id=row["account_id"],
        status=OrderStatus(row["status"]),
        identifiers=tuple(_identifier(i) for i in row["identifiers"]),
        authorization_ids=tuple(uuid.UUID(a) for a in row["authorization_ids"]),
        expires=row["expires"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        error=_problem(row["error"]),
        certificate_id=row["certificate_id"],
        request_id=row["request_id"],
        replaces=row["replaces"],
        created_at=row["created_at"],
    )


def _challenge(row: RowMapping) -> Challenge:
    return Challenge(
        id=row["id"],
        authorization_id=row["authorization_id"],
        type=ChallengeType(row["type"]),
        token=row["token"],
        status=ChallengeStatus(row["status"]),
        validated=row["validated"],
        error=_problem(row["error"]),
        started_at=row["started_at"],
    )


def _authorization(row: RowMapping, challenges: Sequence[Challenge]) -> Authorization:
    return Authorization(
        id=row["id"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        identifier=Identifier(IdentifierType(row["identifier_type"]), row["identifier_value"]),
        status=AuthzStatus(row["status"]),
        expires=row["expires"],
        challenges=tuple(challenges),
    )


# -- statements built once (see the module docstring) ---------------------------------------

_USE_NONCE = {
    "sqlite": sqlite_insert(acme_used_nonces).on_conflict_do_nothing(index_elements=["value"]),
    "postgresql": pg_insert(acme_used_nonces).on_conflict_do_nothing(index_elements=["value"]),
}
_PURGE_NONCES = delete(acme_used_nonces).where(acme_used_nonces.c.expires_at <= bindparam("now"))
_INSERT_ORDER = insert(acme_orders)
_INSERT_AUTHZ = insert(acme_authorizations)
_INSERT_CHALLENGE = insert(acme_challenges)
_GET_ACCOUNT = select(acme_accounts).where(acme_accounts.c.id == bindparam("id"))
_FIND_ACCOUNT = select(acme_accounts).where(
    acme_accounts.c.scope == bindparam("scope"),
    acme_accounts.c.thumbprint == bindparam("thumbprint"),
)
_ACCOUNT_BY_EAB = (
    select(acme_accounts)
    .where(
        acme_accounts.c.scope == bindparam("scope"),
        acme_accounts.c.eab_kid == bindparam("eab_kid"),
    )
    .limit(1)
)
_GET_ORDER = select(acme_orders).where(acme_orders.c.id == bindparam("id"))
_ORDER_BY_CERTIFICATE = (
    select(acme_orders).where(acme_orders.c.certificate_id == bindparam("id")).limit(1)
)
_ORDER_REPLACING = (
    select(acme_orders)
    .where(
        acme_orders.c.replaces == bindparam("replaces"),
        # A pending or ready order past its expiry is invalid (RFC 8555 §7.1.6) even while
        # its stored status, brought up to date when it is next read, still says otherwise.
        or_(
            acme_orders.c.status.in_([OrderStatus.PROCESSING.value, OrderStatus.VALID.value]),
            (acme_orders.c.status != OrderStatus.INVALID.value)
            & (acme_orders.c.expires > bindparam("now")),
        ),
    )
    .limit(1)
)
_AUTHORIZED = select(
    acme_authorizations.c.identifier_type, acme_authorizations.c.identifier_value
).where(
    acme_authorizations.c.account_id == bindparam("account_id"),
    acme_authorizations.c.status == AuthzStatus.VALID.value,
    acme_authorizations.c.expires > bindparam("now"),
)
_GET_AUTHZ = select(acme_authorizations).where(acme_authorizations.c.id == bindparam("id"))
_AUTHZS_OF = select(acme_authorizations).where(
    acme_authorizations.c.order_id == bindparam("order_id")
)
_CHALLENGES_OF = (
    select(acme_challenges)
    .where(acme_challenges.c.authorization_id.in_(bindparam("ids", expanding=True)))
    .order_by(acme_challenges.c.position)
)
_GET_CHALLENGE = select(acme_challenges).where(acme_challenges.c.id == bindparam("id"))


@cache
def _compare_and_set(table: Table, columns: tuple[str, ...]) -> Update:
    """UPDATE table SET columns WHERE id = :_id AND status IN :_expected; one statement per
    table and set of columns, made on first use."""
    return (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .where(table.c.status.in_(bindparam("_expected", expanding=True)))
        .values({c: bindparam(f"_v_{c}") for c in columns})
    )


class AcmeRepository(Repository):
    table = acme_accounts
    what = "ACME account"

    async def _cas(
        self,
        table: Table,
        row_id: uuid.UUID,
        expected: Sequence[str],
        values: dict[str, Any],
    ) -> bool:
        statement = _compare_and_set(table, tuple(values))
        params = {f"_v_{k}": v for k, v in values.items()}
        params["_id"], params["_expected"] = row_id, list(expected)
        result = await self._session.execute(statement, params)
        return bool(result.rowcount == 1)

    # -- nonces (RFC 8555 §6.5) --

    async def use_nonce(self, value: str, expires: datetime) -> bool:
        """Record a nonce as used; False when it already was (a replay). No exception on
        the conflict (ON CONFLICT DO NOTHING), so the transaction stays usable."""
        result = await self._session.execute(
            _USE_NONCE[self._dialect], {"value": value, "expires_at": expires}
        )
        return bool(result.rowcount == 1)

    async def purge_nonces(self, now: datetime) -> int:
        result = await self._session.execute(_PURGE_NONCES, {"now": now})
        return int(result.rowcount)

    # -- accounts (RFC 8555 §7.3) --

    async def add_account(self, account: Account) -> Account:
        try:
            await self._insert(
                {
                    "id": account.id,
                    "scope": account.scope,
                    "thumbprint": account.thumbprint,
                    "jwk": account.jwk,
                    "status": account.status.value,
                    "contact": list(account.contact),
                    "eab_kid": account.eab_kid,
                    "created_at": account.created_at,
                },
                {_ACCOUNT_KEY: lambda: Conflict("account exists", code="acme_account_exists")},
            )
        except Conflict as err:
            if err.code != "acme_account_exists":
                raise
            existing = await self.find_account(account.scope, account.thumbprint)
            assert existing is not None
            return existing
        return account

    async def get_account(self, account_id: uuid.UUID) -> Account | None:
        row = await self._row(_GET_ACCOUNT, {"id": account_id})
        return _account(row) if row else None

    async def account_bound_by(self, scope: str, eab_kid: str) -> Account | None:
        row = await self._row(_ACCOUNT_BY_EAB, {"scope": scope, "eab_kid": eab_kid})
        return _account(row) if row else None

    async def find_account(self, scope: str, thumbprint: str) -> Account | None:
        row = await self._row(_FIND_ACCOUNT, {"scope": scope, "thumbprint": thumbprint})
        return _account(row) if row else None

    async def update_account(
        self,
        account_id: uuid.UUID,
        *,
        status: AccountStatus | None = None,
        contact: tuple[str, ...] | None = None,
        jwk: dict[str, Any] | None = None,
        thumbprint: str | None = None,
    ) -> Account | None:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status.value
        if contact is not None:
            values["contact"] = list(contact)
        if jwk is not None and thumbprint is not None:
            values["jwk"], values["thumbprint"] = jwk, thumbprint
        if not values:
            return await self.get_account(account_id)
        row = await self._update_returning(
            update(acme_accounts)
            .where(acme_accounts.c.id == account_id)
            .values(**values)
            .returning(*acme_accounts.c),
            {_ACCOUNT_KEY: lambda: Conflict("key in use", code="acme_key_in_use")},
        )
        return _account(row) if row else None

    # -- orders, authorizations, challenges (RFC 8555 §7.4, §7.5) --

    async def add_order(self, order: Order, authorizations: Sequence[Authorization]) -> None:
        await self._session.execute(
            _INSERT_ORDER,
            {
                "id": order.id,
                "account_id": order.account_id,
                "status": order.status.value,
                "identifiers": [_identifier_json(i) for i in order.identifiers],
                "authorization_ids": [str(a) for a in order.authorization_ids],
                "expires": order.expires,
                "not_before": order.not_before,
                "not_after": order.not_after,
                "error": _problem_json(order.error),
                "certificate_id": order.certificate_id,
                "request_id": order.request_id,
                "replaces": order.replaces,
                "created_at": order.created_at,
            },
        )
        if not authorizations:
            return
        await self._session.execute(
            _INSERT_AUTHZ,
            [
                {
                    "id": a.id,
                    "account_id": a.account_id,
                    "order_id": a.order_id,
                    "identifier_type": a.identifier.type.value,
                    "identifier_value": a.identifier.value,
                    "status": a.status.value,
                    "expires": a.expires,
                }
                for a in authorizations
            ],
        )
        challenges = [
            {
                "id": c.id,
                "authorization_id": a.id,
                "type": c.type.value,
                "token": c.token,
                "status": c.status.value,
                "validated": c.validated,
                "error": _problem_json(c.error),
                "position": position,
                "started_at": c.started_at,
            }
            for a in authorizations
            for position, c in enumerate(a.challenges)
        ]
        if challenges:
            await self._session.execute(_INSERT_CHALLENGE, challenges)

    async def get_order(self, order_id: uuid.UUID) -> Order | None:
        row = await self._row(_GET_ORDER, {"id": order_id})
        return _order(row) if row else None

    async def list_orders(self, account_id: uuid.UUID, limit: int) -> list[Order]:
        rows = await self._all(
            select(acme_orders)
            .where(acme_orders.c.account_id == account_id)
            .order_by(acme_orders.c.created_at.desc())
            .limit(limit)
        )
        return [_order(r) for r in rows]

    async def cancel_pending(self, account_id: uuid.UUID, error: Problem) -> int:
        acc = account_id
        authzs = acme_authorizations.c
        await self._session.execute(
            update(acme_authorizations)
            .where(authzs.account_id == acc, authzs.status == AuthzStatus.PENDING.value)
            .values(status=AuthzStatus.DEACTIVATED.value)
        )
        orders = acme_orders.c
        result = await self._session.execute(
            update(acme_orders)
            .where(
                orders.account_id == acc,
                orders.status.in_([OrderStatus.PENDING.value, OrderStatus.READY.value]),
            )
            .values(status=OrderStatus.INVALID.value, error=_problem_json(error))
        )
        return int(result.rowcount)

    async def find_order_by_certificate(self, certificate_id: uuid.UUID) -> Order | None:
        row = await self._row(_ORDER_BY_CERTIFICATE, {"id": certificate_id})
        return _order(row) if row else None

    async def find_order_replacing(self, replaces: str, now: datetime) -> Order | None:
        row = await self._row(_ORDER_REPLACING, {"replaces": replaces, "now": now})
        return _order(row) if row else None

    async def authorized_identifiers(self, account_id: uuid.UUID, now: datetime) -> set[Identifier]:
        result = await self._session.execute(_AUTHORIZED, {"account_id": account_id, "now": now})
        return {normalize(Identifier(IdentifierType(t), v)) for t, v in result}

    async def set_order(
        self,
        order_id: uuid.UUID,
        *,
        status: OrderStatus,
        expected: Sequence[OrderStatus] | None = None,
        error: Problem | None = None,
        certificate_id: uuid.UUID | None = None,
        request_id: uuid.UUID | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status.value}
        if error is not None:
            values["error"] = _problem_json(error)
        if certificate_id is not None:
            values["certificate_id"] = certificate_id
        if request_id is not None:
            values["request_id"] = request_id
        if expected is None:
            result = await self._session.execute(
                update(acme_orders).where(acme_orders.c.id == order_id).values(**values)
            )
            return bool(result.rowcount == 1)
        return await self._cas(acme_orders, order_id, [s.value for s in expected], values)

    async def get_authorization(
        self, authz_id: uuid.UUID, *, challenges: bool = True
    ) -> Authorization | None:
        row = await self._row(_GET_AUTHZ, {"id": authz_id})
        if row is None:
            return None
        if not challenges:
            return _authorization(row, ())
        found = await self._challenges([authz_id])
        return _authorization(row, found.get(authz_id, []))

    async def authorizations_of(
        self, order_id: uuid.UUID, *, challenges: bool = True
    ) -> list[Authorization]:
        rows = (await self._session.execute(_AUTHZS_OF, {"order_id": order_id})).mappings().all()
        if not challenges:
            return [_authorization(r, ()) for r in rows]
        found = await self._challenges([r["id"] for r in rows])
        return [_authorization(r, found.get(r["id"], [])) for r in rows]

    async def _challenges(self, authz_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Challenge]]:
        if not authz_ids:
            return {}
        result = await self._session.execute(_CHALLENGES_OF, {"ids": authz_ids})
        out: dict[uuid.UUID, list[Challenge]] = {}
        for row in result.mappings():
            out.setdefault(row["authorization_id"], []).append(_challenge(row))
        return out

    async def set_authorization(
        self, authz_id: uuid.UUID, status: AuthzStatus, expected: Sequence[AuthzStatus]
    ) -> bool:
        return await self._cas(
            acme_authorizations, authz_id, [s.value for s in expected], {"status": status.value}
        )

    async def get_challenge(self, challenge_id: uuid.UUID) -> Challenge | None:
        row = await self._row(_GET_CHALLENGE, {"id": challenge_id})
        return _challenge(row) if row else None

    async def set_challenge(
        self,
        challenge_id: uuid.UUID,
        status: ChallengeStatus,
        expected: Sequence[ChallengeStatus],
        *,
        validated: datetime | None = None,
        error: Problem | None = None,
        started_at: datetime | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status.value}
        if validated is not None:
            values["validated"] = validated
        if error is not None:
            values["error"] = _problem_json(error)
        if started_at is not None:
            values["started_at"] = started_at
        return await self._cas(acme_challenges, challenge_id, [s.value for s in expected], values)

    async def stuck_challenges(self, started_before: datetime, limit: int) -> list[Challenge]:
        # Rows written before migration 0006 have no start time: count them as stuck.
        rows = await self._all(
            select(acme_challenges)
            .where(
                acme_challenges.c.status == ChallengeStatus.PROCESSING.value,
                or_(
                    acme_challenges.c.started_at < started_before,
                    acme_challenges.c.started_at.is_(None),
                ),
            )
            .order_by(acme_challenges.c.started_at)
            .limit(limit)
        )
        return [_challenge(r) for r in rows]

    async def _row(self, statement: Any, params: dict[str, Any]) -> RowMapping | None:
        result = await self._session.execute(statement, params)
        row: RowMapping | None = result.mappings().one_or_none()
        return row
