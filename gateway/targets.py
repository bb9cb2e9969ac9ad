"""The one resolver of enrollment targets (DESIGN.md, Layout).

An *enrollment target* (gateway.core.target) is what a request names: an application's
attached profile in the active project (`/applications/{app}/profiles/{profile}/…`,
EST's `{app}.{profile}` label), or a legacy profile by id (`/profiles/{profile_id}/…`,
any project). REST and the three protocols resolve through here and nowhere else; the
answer carries the project, the application (None for legacy), the profile, its CA and
policy, and each method's typed settings (gateway.core.methods).

Targets are configuration, read on every request: they go through the read cache
(store.cache), which any write to those tables, from any process, invalidates.
"""

from __future__ import annotations

import re
import uuid

from gateway.core.errors import NoActiveProject, NotFound
from gateway.core.methods import MethodSettings
from gateway.core.model import (
    Application,
    CertificateAuthority,
    EnrollmentMethod,
    Policy,
    Profile,
    Project,
)
from gateway.core.target import AttachedTarget, EnrollmentTarget
from store.db import Database, Tx

__all__ = [
    "SLUG",
    "AttachedTarget",
    "EnrollmentTarget",
    "NotAttached",
    "TargetResolver",
    "active_project",
    "load_legacy",
    "load_scoped",
]

# Application and profile slugs (DESIGN.md, URLs); always fullmatch: "$" would let a
# trailing newline through.
SLUG = re.compile(r"[a-z0-9-]{1,63}")


class NotAttached(NotFound):
    """The application or profile does not exist, or the profile is not attached."""


async def active_project(tx: Tx) -> Project:
    orgs = await tx.organizations.list()
    if not orgs:
        raise NotFound("no organization exists yet; start the gateway once to bootstrap")
    project = await tx.projects.get_active(orgs[0].id)
    if project is None:
        raise NoActiveProject(
            "the organization has no active project; designate one with "
            "POST /api/v1/projects/{id}/activate"
        )
    return project


async def _issuing(tx: Tx, profile: Profile) -> tuple[CertificateAuthority | None, Policy | None]:
    return await tx.cas.get(profile.ca_id), await tx.policies.get(profile.policy_id)


async def load_scoped(tx: Tx, app_slug: str, profile_slug: str) -> AttachedTarget:
    """An attached profile read in the caller's own transaction (a change that has not
    committed yet, e.g. the first-start bootstrap, sees its own rows); the resolver's cached
    reads use the same function."""
    project = await active_project(tx)
    app = await tx.applications.get_by_slug(project.id, app_slug)
    if app is None:
        raise NotAttached(f"application '{app_slug}' not found")
    profile = await tx.profiles.get_by_slug(project.id, profile_slug)
    attachment = await tx.attachments.get(app.id, profile.id) if profile else None
    if profile is None or attachment is None:
        raise NotAttached(f"profile '{profile_slug}' is not attached to application '{app_slug}'")
    ca, policy = await _issuing(tx, profile)
    methods = MethodSettings.from_stored(attachment.methods, f"{app_slug}/{profile_slug}")
    return AttachedTarget(project, app, profile, attachment, ca, policy, methods)


async def load_legacy(tx: Tx, profile_id: uuid.UUID) -> EnrollmentTarget:
    """A legacy profile read in the caller's own transaction (see load_scoped)."""
    profile = await tx.profiles.get(profile_id)
    project = await tx.projects.get(profile.project_id) if profile else None
    if profile is None or project is None:
        raise NotAttached(f"profile {profile_id} not found")
    ca, policy = await _issuing(tx, profile)
    methods = MethodSettings.from_stored(profile.enrollment, str(profile_id))
    return EnrollmentTarget(project, None, profile, None, ca, policy, methods)


class TargetResolver:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def application(self, app_slug: str) -> tuple[Project, Application]:
        """An application of the active project, by slug."""
        if not SLUG.fullmatch(app_slug):
            raise NotFound(f"application '{app_slug[:63]}' not found")

        async def load(tx: Tx) -> tuple[Project, Application | None]:
            project = await active_project(tx)
            return project, await tx.applications.get_by_slug(project.id, app_slug)

        project, app = await self._db.cached(("target-app", app_slug), load)
        if app is None:
            raise NotFound(f"application '{app_slug}' not found")
        return project, app

    async def scoped(self, app_slug: str, profile_slug: str) -> AttachedTarget:
        """An attached profile of an application of the active project. Raises NotAttached
        without asking the database for names that are not slugs (a NUL byte, say, is an
        error on PostgreSQL, not a miss)."""
        if not (SLUG.fullmatch(app_slug) and SLUG.fullmatch(profile_slug)):
            raise NotAttached("unknown application or profile")

        async def load(tx: Tx) -> AttachedTarget:
            return await load_scoped(tx, app_slug, profile_slug)

        return await self._db.cached(("target", app_slug, profile_slug), load)

    async def serving(
        self, method: EnrollmentMethod, app_slug: str, profile_slug: str
    ) -> AttachedTarget | None:
        """The attached profile when `method` is enabled on it; None for every miss (no
        such application or profile, not attached, method off), which a protocol answers
        in its own form."""
        try:
            target = await self.scoped(app_slug, profile_slug)
        except NotFound:
            return None
        return target if target.enabled(method) else None

    async def serving_legacy(
        self, method: EnrollmentMethod, profile_id: uuid.UUID
    ) -> EnrollmentTarget | None:
        """The legacy profile when `method` is enabled on it; None for every miss."""
        try:
            target = await self.legacy(profile_id)
        except NotFound:
            return None
        return target if target.enabled(method) else None

    async def require_serving(
        self, method: EnrollmentMethod, app_slug: str, profile_slug: str
    ) -> AttachedTarget:
        """serving(), with every miss as one NotFound naming the method and the path's
        values (cut to the slug length: they come from a client)."""
        target = await self.serving(method, app_slug, profile_slug)
        if target is None:
            name = method.value.upper()
            raise NotFound(
                f"no {name} enrollment at application '{app_slug[:63]}', profile "
                f"'{profile_slug[:63]}' (unknown application or profile, profile not "
                f"attached, or {name} not enabled)"
            )
        return target

    async def require_serving_legacy(
        self, method: EnrollmentMethod, profile_id: uuid.UUID
    ) -> EnrollmentTarget:
        """serving_legacy(), with every miss as one NotFound."""
        target = await self.serving_legacy(method, profile_id)
        if target is None:
            raise NotFound(f"no {method.value.upper()} enrollment for profile {profile_id}")
        return target

    async def legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget:
        """A profile by id, in any project (legacy profile-scoped endpoints keep working
        after another project becomes active)."""

        async def load(tx: Tx) -> EnrollmentTarget:
            return await load_legacy(tx, profile_id)

        return await self._db.cached(("target-legacy", profile_id), load)
