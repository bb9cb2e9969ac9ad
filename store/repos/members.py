"""Application members (access control): one role per principal per application."""

from __future__ import annotations

import builtins
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping

from gateway.core.errors import Conflict
from gateway.core.model import AppRole, Member
from store.repos._base import Repository
from store.tables_access import application_members

_t = application_members
_PRIMARY_KEY = "pk_application_members"


def _member(row: RowMapping) -> Member:
    return Member(
        application_id=row["application_id"],
        principal_id=row["principal_id"],
        role=AppRole(row["role"]),
        created_at=row["created_at"],
    )


class MemberRepository(Repository):
    table = _t
    what = "application member"

    async def add(self, member: Member) -> None:
        """Insert; raises Conflict(code="already_member") if the principal already has a
        role in the application (the primary key is the pair)."""
        await self._insert(
            {
                "application_id": member.application_id,
                "principal_id": member.principal_id,
                "role": member.role.value,
                "created_at": member.created_at,
            },
            {
                _PRIMARY_KEY: lambda: Conflict(
                    "the principal is already a member of this application; "
                    "change its role instead",
                    code="already_member",
                ),
            },
        )

    async def get(self, application_id: uuid.UUID, principal_id: uuid.UUID) -> Member | None:
        row = await self._get_by(
            _t.c.application_id == application_id, _t.c.principal_id == principal_id
        )
        return _member(row) if row else None

    async def list(self, application_id: uuid.UUID) -> builtins.list[Member]:
        """Members of one application, oldest first."""
        query = (
            select(_t)
            .where(_t.c.application_id == application_id)
            .order_by(_t.c.created_at, _t.c.principal_id)
        )
        return [_member(r) for r in await self._all(query)]

    async def list_for_principal(self, principal_id: uuid.UUID) -> builtins.list[Member]:
        """Every application role of one principal, oldest first."""
        query = (
            select(_t)
            .where(_t.c.principal_id == principal_id)
            .order_by(_t.c.created_at, _t.c.application_id)
        )
        return [_member(r) for r in await self._all(query)]

    async def set_role(
        self, application_id: uuid.UUID, principal_id: uuid.UUID, role: AppRole
    ) -> Member | None:
        """The updated member, or None when the principal is not a member."""
        row = await self._update_returning(
            update(_t)
            .where(_t.c.application_id == application_id, _t.c.principal_id == principal_id)
            .values(role=role.value)
            .returning(*_t.c)
        )
        return _member(row) if row else None

    async def remove(self, application_id: uuid.UUID, principal_id: uuid.UUID) -> Member | None:
        """The removed member, or None when there was none."""
        result = await self._session.execute(
            delete(_t)
            .where(_t.c.application_id == application_id, _t.c.principal_id == principal_id)
            .returning(*_t.c)
        )
        row = result.mappings().one_or_none()
        return _member(row) if row else None

    async def remove_principal(self, principal_id: uuid.UUID) -> builtins.list[Member]:
        """Remove every membership of a principal (it is being deleted); returns them."""
        result = await self._session.execute(
            delete(_t).where(_t.c.principal_id == principal_id).returning(*_t.c)
        )
        return [_member(r) for r in result.mappings().all()]
