"""Organizations and projects."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from gateway.core.errors import Conflict, NotFound
from gateway.core.model import Organization, Project, ProjectStatus
from store import tables
from store.repos._base import Repository, map_integrity_error

_t_org = tables.organizations
_t_proj = tables.projects


def _organization(row: RowMapping) -> Organization:
    return Organization(id=row["id"], name=row["name"], created_at=row["created_at"])


def _project(row: RowMapping) -> Project:
    return Project(
        id=row["id"],
        organization_id=row["organization_id"],
        name=row["name"],
        status=ProjectStatus(row["status"]),
        wrapped_data_key=bytes(row["wrapped_data_key"]),
        created_at=row["created_at"],
        exported_at=row["exported_at"],
    )


class OrganizationRepository(Repository):
    table = _t_org
    what = "organization"

    async def add(self, organization: Organization) -> None:
        await self._insert(
            {
                "id": organization.id,
                "name": organization.name,
                "created_at": organization.created_at,
            },
            {
                "uq_organizations_name": lambda: Conflict(
                    f"an organization named {organization.name!r} already exists"
                )
            },
        )

    async def get(self, organization_id: uuid.UUID) -> Organization | None:
        row = await self._get_by(_t_org.c.id == organization_id)
        return _organization(row) if row else None

    async def get_by_name(self, name: str) -> Organization | None:
        row = await self._get_by(_t_org.c.name == name)
        return _organization(row) if row else None

    async def list(self) -> builtins.list[Organization]:
        rows = await self._all(select(_t_org).order_by(_t_org.c.created_at, _t_org.c.name))
        return [_organization(r) for r in rows]


class ProjectRepository(Repository):
    table = _t_proj
    what = "project"

    async def add(self, project: Project) -> None:
        await self._insert(
            {
                "id": project.id,
                "organization_id": project.organization_id,
                "name": project.name,
                "status": project.status.value,
                "exported_at": project.exported_at,
                "wrapped_data_key": project.wrapped_data_key,
                "created_at": project.created_at,
            },
            {
                "uq_projects_organization_id_name": lambda: Conflict(
                    f"a project named {project.name!r} already exists in this organization"
                ),
                tables.ONE_ACTIVE_PROJECT_INDEX: lambda: Conflict(
                    "this organization already has an active project"
                ),
            },
        )

    async def get(self, project_id: uuid.UUID) -> Project | None:
        row = await self._get_by(_t_proj.c.id == project_id)
        return _project(row) if row else None

    async def mark_exported(self, project_id: uuid.UUID, at: datetime) -> None:
        """Record an export of the project (it is read-only from then on)."""
        await self._session.execute(
            update(_t_proj).where(_t_proj.c.id == project_id).values(exported_at=at)
        )

    async def list(self, organization_id: uuid.UUID | None = None) -> builtins.list[Project]:
        query = select(_t_proj).order_by(_t_proj.c.created_at, _t_proj.c.name)
        if organization_id is not None:
            query = query.where(_t_proj.c.organization_id == organization_id)
        return [_project(r) for r in await self._all(query)]

    async def get_active(self, organization_id: uuid.UUID) -> Project | None:
        row = await self._get_by(
            _t_proj.c.organization_id == organization_id,
            _t_proj.c.status == ProjectStatus.ACTIVE.value,
        )
        return _project(row) if row else None

    async def set_active(self, organization_id: uuid.UUID, project_id: uuid.UUID) -> Project:
        """Make `project_id` the organization's active project; the others become legacy.

        Demote first, then promote, so the partial unique index never sees two active
        rows. A concurrent set_active that committed first makes this one raise Conflict.
        """
        target = await self._get_by(
            _t_proj.c.id == project_id, _t_proj.c.organization_id == organization_id
        )
        if target is None:
            raise NotFound("no such project in this organization")
        demote = (
            update(_t_proj)
            .where(
                _t_proj.c.organization_id == organization_id,
                _t_proj.c.status == ProjectStatus.ACTIVE.value,
                _t_proj.c.id != project_id,
            )
            .values(status=ProjectStatus.LEGACY.value)
        )
        promote = (
            update(_t_proj)
            .where(_t_proj.c.id == project_id)
            .values(status=ProjectStatus.ACTIVE.value)
            .returning(*_t_proj.c)
        )
        # One savepoint for both, so a failure never leaves the organization without
        # an active project when the caller catches the error and carries on.
        try:
            async with self._session.begin_nested():
                await self._session.execute(demote)
                row = (await self._session.execute(promote)).mappings().one()
        except IntegrityError as err:
            mapped = map_integrity_error(
                err,
                _t_proj,
                self.what,
                {
                    tables.ONE_ACTIVE_PROJECT_INDEX: lambda: Conflict(
                        "another project of this organization was made active at the same time"
                    ),
                },
            )
            if mapped is None:
                raise
            raise mapped from err
        return _project(row)
