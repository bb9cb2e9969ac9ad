"""Who may call the API (principals, tokens) and stored secrets."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from gateway.core.errors import Conflict
from gateway.core.model import ApiToken, Principal, PrincipalKind, ProductRole, Secret
from store import tables
from store.repos._base import Repository, _is_foreign_key_violation

_t_pr = tables.principals
_t_tok = tables.api_tokens
_t_sec = tables.secrets


def _principal(row: RowMapping) -> Principal:
    role = row["product_role"]
    return Principal(
        id=row["id"],
        name=row["name"],
        kind=PrincipalKind(row["kind"]),
        product_role=ProductRole(role) if role is not None else None,
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


def _token(row: RowMapping) -> ApiToken:
    return ApiToken(
        id=row["id"],
        principal_id=row["principal_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _secret(row: RowMapping) -> Secret:
    return Secret(
        id=row["id"],
        project_id=row["project_id"],
        owner=row["owner"],
        purpose=row["purpose"],
        ciphertext=bytes(row["ciphertext"]),
        created_at=row["created_at"],
    )


class PrincipalRepository(Repository):
    table = _t_pr
    what = "principal"

    async def add(self, principal: Principal) -> None:
        await self._insert(
            {
                "id": principal.id,
                "name": principal.name,
                "kind": principal.kind.value,
                "product_role": principal.product_role.value if principal.product_role else None,
                "disabled": principal.disabled,
                "created_at": principal.created_at,
            },
            {
                "uq_principals_name": lambda: Conflict(
                    f"a principal named {principal.name!r} already exists"
                ),
            },
        )

    async def get(self, principal_id: uuid.UUID) -> Principal | None:
        row = await self._get_by(_t_pr.c.id == principal_id)
        return _principal(row) if row else None

    async def get_by_name(self, name: str) -> Principal | None:
        row = await self._get_by(_t_pr.c.name == name)
        return _principal(row) if row else None

    async def list(self) -> builtins.list[Principal]:
        rows = await self._all(select(_t_pr).order_by(_t_pr.c.created_at, _t_pr.c.name))
        return [_principal(r) for r in rows]

    async def get_many(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Principal]:
        wanted = set(ids)
        if not wanted:
            return {}
        rows = await self._all(select(_t_pr).where(_t_pr.c.id.in_(wanted)))
        return {r["id"]: _principal(r) for r in rows}

    async def update(
        self, principal_id: uuid.UUID, *, product_role: ProductRole | None, disabled: bool
    ) -> Principal | None:
        """Set the product role and the disabled flag; None when the principal is gone."""
        row = await self._update_returning(
            update(_t_pr)
            .where(_t_pr.c.id == principal_id)
            .values(product_role=product_role.value if product_role else None, disabled=disabled)
            .returning(*_t_pr.c)
        )
        return _principal(row) if row else None

    async def delete(self, principal_id: uuid.UUID) -> bool:
        """Delete the row; its tokens and memberships must be gone first. Raises
        Conflict(code="principal_in_use") when another row still refers to it."""
        statement = delete(_t_pr).where(_t_pr.c.id == principal_id).returning(_t_pr.c.id)
        try:
            async with self._session.begin_nested():
                result = await self._session.execute(statement)
                return result.first() is not None
        except IntegrityError as err:
            if not _is_foreign_key_violation(err):
                raise
            raise Conflict(
                "the principal is still referred to (e.g. by certificate requests); "
                "disable it instead",
                code="principal_in_use",
            ) from err

    async def count_active_admins(self, *, lock: bool = False) -> int:
        """Enabled Product Admins. lock=True locks their rows (PostgreSQL; SQLite writers are
        serialized anyway) so two concurrent demotions cannot both see "one more left"."""
        query = select(_t_pr.c.id).where(
            _t_pr.c.product_role == ProductRole.ADMIN.value, _t_pr.c.disabled.is_(False)
        )
        if lock:
            query = query.with_for_update()
        return len(await self._all(query))


class TokenRepository(Repository):
    table = _t_tok
    what = "API token"

    async def add(self, token: ApiToken) -> None:
        await self._insert(
            {
                "id": token.id,
                "principal_id": token.principal_id,
                "name": token.name,
                "secret_hash": token.secret_hash,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "revoked_at": token.revoked_at,
            }
        )

    async def get(self, token_id: uuid.UUID) -> ApiToken | None:
        row = await self._get_by(_t_tok.c.id == token_id)
        return _token(row) if row else None

    async def list(self, principal_id: uuid.UUID) -> builtins.list[ApiToken]:
        query = (
            select(_t_tok)
            .where(_t_tok.c.principal_id == principal_id)
            .order_by(_t_tok.c.created_at, _t_tok.c.id)
        )
        return [_token(r) for r in await self._all(query)]

    async def delete_for_principal(self, principal_id: uuid.UUID) -> int:
        """Delete every token of a principal (it is being deleted); returns how many."""
        result = await self._session.execute(
            delete(_t_tok).where(_t_tok.c.principal_id == principal_id).returning(_t_tok.c.id)
        )
        return len(result.all())

    async def revoke(self, token_id: uuid.UUID, at: datetime) -> ApiToken | None:
        """Revoke if not yet revoked; None when missing or already revoked."""
        row = await self._update_returning(
            update(_t_tok)
            .where(_t_tok.c.id == token_id, _t_tok.c.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(*_t_tok.c)
        )
        return _token(row) if row else None


class SecretRepository(Repository):
    table = _t_sec
    what = "secret"

    @staticmethod
    def _values(secret: Secret) -> dict[str, object]:
        return {
            "id": secret.id,
            "project_id": secret.project_id,
            "owner": secret.owner,
            "purpose": secret.purpose,
            "ciphertext": secret.ciphertext,
            "created_at": secret.created_at,
        }

    async def add(self, secret: Secret) -> None:
        await self._insert(
            self._values(secret),
            {
                "uq_secrets_owner_purpose": lambda: Conflict(
                    f"a {secret.purpose!r} secret for {secret.owner!r} already exists"
                ),
            },
        )

    async def get(self, secret_id: uuid.UUID) -> Secret | None:
        row = await self._get_by(_t_sec.c.id == secret_id)
        return _secret(row) if row else None

    async def get_by_owner(self, owner: str, purpose: str) -> Secret | None:
        row = await self._get_by(_t_sec.c.owner == owner, _t_sec.c.purpose == purpose)
        return _secret(row) if row else None

    async def replace(self, secret: Secret) -> Secret:
        """Upsert by (owner, purpose): the stored row becomes `secret` entirely (its id too,
        so get(secret.id) finds it afterwards)."""
        row = await self._upsert(self._values(secret), key=("owner", "purpose"))
        return _secret(row)

    async def purge(self, purpose: str, created_before: datetime) -> int:
        """Delete the secrets of one purpose made before a time; how many."""
        result = await self._session.execute(
            delete(_t_sec).where(_t_sec.c.purpose == purpose, _t_sec.c.created_at < created_before)
        )
        return int(result.rowcount)

    async def delete(self, secret_id: uuid.UUID) -> bool:
        """True if a secret was deleted."""
        result = await self._session.execute(
            delete(_t_sec).where(_t_sec.c.id == secret_id).returning(_t_sec.c.id)
        )
        return result.first() is not None
