"""What a project is configured with: policies, profiles, applications, attachments."""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from gateway.core.errors import Conflict, DomainError, NotFound
from gateway.core.model import (
    Application,
    IssuerType,
    KeyType,
    Policy,
    Profile,
    ProfileAttachment,
)
from gateway.core.policy_codec import rules_from_dict, rules_to_dict
from store import tables
from store.repos._base import Repository

_t_pol = tables.policies
_t_prof = tables.profiles
_t_app = tables.applications
_t_att = tables.profile_attachments


def _policy(row: RowMapping) -> Policy:
    return Policy(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        rules=rules_from_dict(row["rules"]),
        created_at=row["created_at"],
    )


def _profile(row: RowMapping) -> Profile:
    return Profile(
        id=row["id"],
        project_id=row["project_id"],
        slug=row["slug"],
        name=row["name"],
        ca_id=row["ca_id"],
        policy_id=row["policy_id"],
        validity_days=row["validity_days"],
        key_usages=tuple(row["key_usages"]),
        extended_key_usages=tuple(row["extended_key_usages"]),
        renew_before_days=row["renew_before_days"],
        default_key_type=KeyType(row["default_key_type"]),
        enrollment=dict(row["enrollment"]),
        issuer_type=IssuerType(row["issuer_type"]),
        created_at=row["created_at"],
    )


def _application(row: RowMapping) -> Application:
    return Application(
        id=row["id"],
        project_id=row["project_id"],
        slug=row["slug"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
    )


def _attachment(row: RowMapping) -> ProfileAttachment:
    return ProfileAttachment(
        id=row["id"],
        application_id=row["application_id"],
        profile_id=row["profile_id"],
        methods=dict(row["methods"]),
        created_at=row["created_at"],
    )


class PolicyRepository(Repository):
    table = _t_pol
    what = "policy"

    @staticmethod
    def _conflicts(policy: Policy) -> dict[str, Any]:
        def duplicate() -> DomainError:
            return Conflict(f"a policy named {policy.name!r} already exists in this project")

        return {"uq_policies_project_id_name": duplicate}

    async def add(self, policy: Policy) -> None:
        await self._insert(
            {
                "id": policy.id,
                "project_id": policy.project_id,
                "name": policy.name,
                "rules": rules_to_dict(policy.rules),
                "created_at": policy.created_at,
            },
            self._conflicts(policy),
        )

    async def get(self, policy_id: uuid.UUID) -> Policy | None:
        row = await self._get_by(_t_pol.c.id == policy_id)
        return _policy(row) if row else None

    async def get_by_name(self, project_id: uuid.UUID, name: str) -> Policy | None:
        row = await self._get_by(_t_pol.c.project_id == project_id, _t_pol.c.name == name)
        return _policy(row) if row else None

    async def list(self, project_id: uuid.UUID) -> builtins.list[Policy]:
        query = (
            select(_t_pol)
            .where(_t_pol.c.project_id == project_id)
            .order_by(_t_pol.c.created_at, _t_pol.c.name)
        )
        return [_policy(r) for r in await self._all(query)]

    async def update(self, policy: Policy) -> Policy:
        """Store the policy's name and rules (id, project and created_at never change)."""
        row = await self._update_returning(
            update(_t_pol)
            .where(_t_pol.c.id == policy.id)
            .values(name=policy.name, rules=rules_to_dict(policy.rules))
            .returning(*_t_pol.c),
            self._conflicts(policy),
        )
        if row is None:
            raise NotFound("no such policy")
        return _policy(row)


class ProfileRepository(Repository):
    table = _t_prof
    what = "profile"

    @staticmethod
    def _conflicts(profile: Profile) -> dict[str, Any]:
        def duplicate() -> DomainError:
            return Conflict(f"a profile with slug {profile.slug!r} already exists in this project")

        return {"uq_profiles_project_id_slug": duplicate}

    @staticmethod
    def _values(profile: Profile) -> dict[str, Any]:
        return {
            "slug": profile.slug,
            "name": profile.name,
            "ca_id": profile.ca_id,
            "policy_id": profile.policy_id,
            "validity_days": profile.validity_days,
            "key_usages": list(profile.key_usages),
            "extended_key_usages": list(profile.extended_key_usages),
            "renew_before_days": profile.renew_before_days,
            "default_key_type": profile.default_key_type.value,
            "enrollment": profile.enrollment,
            "issuer_type": profile.issuer_type.value,
        }

    async def add(self, profile: Profile) -> None:
        values = self._values(profile)
        values.update(id=profile.id, project_id=profile.project_id, created_at=profile.created_at)
        await self._insert(values, self._conflicts(profile))

    async def get(self, profile_id: uuid.UUID) -> Profile | None:
        row = await self._get_by(_t_prof.c.id == profile_id)
        return _profile(row) if row else None

    async def get_by_slug(self, project_id: uuid.UUID, slug: str) -> Profile | None:
        row = await self._get_by(_t_prof.c.project_id == project_id, _t_prof.c.slug == slug)
        return _profile(row) if row else None

    async def list(self, project_id: uuid.UUID | None = None) -> builtins.list[Profile]:
        query = select(_t_prof).order_by(_t_prof.c.created_at, _t_prof.c.slug)
        if project_id is not None:
            query = query.where(_t_prof.c.project_id == project_id)
        return [_profile(r) for r in await self._all(query)]

    async def update(self, profile: Profile) -> Profile:
        """Store every field but id, project_id and created_at."""
        row = await self._update_returning(
            update(_t_prof)
            .where(_t_prof.c.id == profile.id)
            .values(**self._values(profile))
            .returning(*_t_prof.c),
            self._conflicts(profile),
        )
        if row is None:
            raise NotFound("no such profile")
        return _profile(row)


class ApplicationRepository(Repository):
    table = _t_app
    what = "application"

    @staticmethod
    def _conflicts(app: Application) -> dict[str, Any]:
        def duplicate() -> DomainError:
            return Conflict(f"an application with slug {app.slug!r} already exists in this project")

        return {"uq_applications_project_id_slug": duplicate}

    async def add(self, app: Application) -> None:
        await self._insert(
            {
                "id": app.id,
                "project_id": app.project_id,
                "slug": app.slug,
                "name": app.name,
                "description": app.description,
                "created_at": app.created_at,
            },
            self._conflicts(app),
        )

    async def get(self, application_id: uuid.UUID) -> Application | None:
        row = await self._get_by(_t_app.c.id == application_id)
        return _application(row) if row else None

    async def get_by_slug(self, project_id: uuid.UUID, slug: str) -> Application | None:
        row = await self._get_by(_t_app.c.project_id == project_id, _t_app.c.slug == slug)
        return _application(row) if row else None

    async def list(self, project_id: uuid.UUID) -> builtins.list[Application]:
        query = (
            select(_t_app)
            .where(_t_app.c.project_id == project_id)
            .order_by(_t_app.c.created_at, _t_app.c.slug)
        )
        return [_application(r) for r in await self._all(query)]

    async def update(self, app: Application) -> Application:
        """Store slug, name and description (id, project and created_at never change)."""
        row = await self._update_returning(
            update(_t_app)
            .where(_t_app.c.id == app.id)
            .values(slug=app.slug, name=app.name, description=app.description)
            .returning(*_t_app.c),
            self._conflicts(app),
        )
        if row is None:
            raise NotFound("no such application")
        return _application(row)


class AttachmentRepository(Repository):
    table = _t_att
    what = "profile attachment"

    async def add(self, attachment: ProfileAttachment) -> None:
        await self._insert(
            {
                "id": attachment.id,
                "application_id": attachment.application_id,
                "profile_id": attachment.profile_id,
                "methods": attachment.methods,
                "created_at": attachment.created_at,
            },
            {
                "uq_profile_attachments_application_id_profile_id": lambda: Conflict(
                    "this profile is already attached to this application"
                ),
            },
        )

    async def get(
        self, application_id: uuid.UUID, profile_id: uuid.UUID
    ) -> ProfileAttachment | None:
        row = await self._get_by(
            _t_att.c.application_id == application_id, _t_att.c.profile_id == profile_id
        )
        return _attachment(row) if row else None

    async def get_by_id(self, attachment_id: uuid.UUID) -> ProfileAttachment | None:
        row = await self._get_by(_t_att.c.id == attachment_id)
        return _attachment(row) if row else None

    async def list(self, application_id: uuid.UUID) -> builtins.list[ProfileAttachment]:
        query = (
            select(_t_att)
            .where(_t_att.c.application_id == application_id)
            .order_by(_t_att.c.created_at, _t_att.c.id)
        )
        return [_attachment(r) for r in await self._all(query)]

    async def update_methods(
        self, attachment_id: uuid.UUID, methods: dict[str, dict[str, Any]]
    ) -> ProfileAttachment:
        row = await self._update_returning(
            update(_t_att)
            .where(_t_att.c.id == attachment_id)
            .values(methods=methods)
            .returning(*_t_att.c)
        )
        if row is None:
            raise NotFound("no such profile attachment")
        return _attachment(row)
