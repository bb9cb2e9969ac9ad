"""Projects, policies and profiles (CAs: gateway.services.cas; applications and attached
profiles: gateway.services.applications).

Use cases open their own transaction: list_*, get_*, add_*, update_*, activate_project.
`create_*` work inside the caller's transaction (bootstrap, protocols) and are what the
use cases wrap."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.methods import check_methods
from gateway.core.model import (
    EnrollmentMethod,
    IssuerType,
    KeyType,
    Organization,
    Policy,
    PolicyRules,
    Profile,
    Project,
    ProjectStatus,
    new_id,
)
from gateway.core.policy import eku_oid, validate_profile_against_policy
from gateway.core.policy_codec import rules_to_dict
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from gateway.targets import SLUG
from gateway.targets import active_project as active_project
from store.db import Tx

# DESIGN.md: slugs are [a-z0-9-]{1,63}, so "{app}.{profile}" EST labels stay unambiguous.
KEY_USAGES = frozenset(
    {
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "encipher_only",
        "decipher_only",
    }
)
METHODS = {m.value for m in EnrollmentMethod}


def check_slug(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise InvalidInput(f"{what} must match [a-z0-9-]{{1,63}}")
    return value


async def project_scope(tx: Tx, project_ref: object | None, *, write: bool = False) -> Project:
    """The project a CA/policy/profile operation acts on: the one `project_ref` (a project
    id, as given in a body or query) names, or the active one when it names none. With
    `write`, an exported (read-only) legacy project is refused (check_writable)."""
    if not project_ref:
        project = await active_project(tx)
    else:
        try:
            project_id = uuid.UUID(str(project_ref))
        except ValueError:
            raise InvalidInput("project_id must be a UUID") from None
        found = await tx.projects.get(project_id)
        if found is None:
            raise NotFound("project not found")
        project = found
    if write:
        check_writable(project)
    return project


def check_writable(project: Project, what: str = "CAs, policies and profiles") -> None:
    """A legacy project that was exported into the active one is read-only: its existing
    profiles keep issuing, but nothing new is created there (issue: export)."""
    if project.read_only:
        raise Conflict(
            f"project '{project.name}' was exported into the active project and is "
            f"read-only: create {what} in the active project",
            code="legacy_read_only",
        )


async def default_organization(tx: Tx) -> Organization:
    orgs = await tx.organizations.list()
    if not orgs:
        raise NotFound("no organization exists yet; start the gateway once to bootstrap")
    return orgs[0]


async def create_project(
    services: Services, tx: Tx, actor: Actor, name: str, *, active: bool = False
) -> Project:
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidInput("project name must be 1 to 128 characters")
    org = await default_organization(tx)
    project_id = new_id()
    project = Project(
        id=project_id,
        organization_id=org.id,
        name=name.strip(),
        status=ProjectStatus.LEGACY,
        wrapped_data_key=services.kms.new_wrapped_data_key(project_id),
        created_at=services.clock.now(),
    )
    await tx.projects.add(project)
    if active:
        await tx.projects.set_active(org.id, project.id)
        project = await tx.projects.get(project.id) or project
    await tx.audit.add(
        event(
            actor,
            project.created_at,
            "project.created",
            "project",
            project.id,
            project_id=project.id,
            details={"name": project.name, "active": active},
        )
    )
    return project


async def list_projects(services: Services) -> list[Project]:
    async with services.db.transaction(read_only=True) as tx:
        return await tx.projects.list()


async def add_project(
    services: Services, actor: Actor, name: str, *, active: bool = False
) -> Project:
    async with services.db.transaction() as tx:
        return await create_project(services, tx, actor, name, active=active)


async def activate_project(services: Services, actor: Actor, project_id: uuid.UUID) -> Project:
    async with services.db.transaction() as tx:
        project = await tx.projects.get(project_id)
        if project is None:
            raise NotFound("project not found")
        await tx.projects.set_active(project.organization_id, project.id)
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "project.activated",
                "project",
                project.id,
                project_id=project.id,
            )
        )
        updated = await tx.projects.get(project_id)
    assert updated is not None
    return updated


async def create_policy(
    services: Services, tx: Tx, actor: Actor, project_id: uuid.UUID, name: str, rules: PolicyRules
) -> Policy:
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidInput("policy name must be 1 to 128 characters")
    policy = Policy(new_id(), project_id, name.strip(), rules, services.clock.now())
    await tx.policies.add(policy)
    await tx.audit.add(
        event(
            actor,
            policy.created_at,
            "policy.created",
            "policy",
            policy.id,
            project_id=project_id,
            details={"name": policy.name, "rules": rules_to_dict(rules)},
        )
    )
    return policy


async def list_policies(services: Services, project_ref: object | None) -> list[Policy]:
    async with services.db.transaction(read_only=True) as tx:
        project = await project_scope(tx, project_ref)
        return await tx.policies.list(project.id)


async def get_policy(services: Services, policy_id: uuid.UUID) -> Policy:
    async with services.db.transaction(read_only=True) as tx:
        policy = await tx.policies.get(policy_id)
    if policy is None:
        raise NotFound("policy not found")
    return policy


async def add_policy(
    services: Services, actor: Actor, project_ref: object | None, name: str, rules: PolicyRules
) -> Policy:
    async with services.db.transaction() as tx:
        project = await project_scope(tx, project_ref, write=True)
        return await create_policy(services, tx, actor, project.id, name, rules)


async def update_policy(
    services: Services, actor: Actor, policy_id: uuid.UUID, rules: PolicyRules
) -> Policy:
    """Replace a policy's rules; refused while a profile under it would conflict with them."""
    async with services.db.transaction() as tx:
        before = await tx.policies.get(policy_id)
        if before is None:
            raise NotFound("policy not found")
        # A rule change must not leave a profile whose defaults the policy now forbids.
        for profile in await tx.profiles.list(before.project_id):
            if profile.policy_id == before.id:
                problems = validate_profile_against_policy(profile, rules)
                if problems:
                    raise InvalidInput(
                        f"profile '{profile.slug}' would conflict with these rules: "
                        + "; ".join(problems)
                    )
        updated = dataclasses.replace(before, rules=rules)
        await tx.policies.update(updated)
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "policy.updated",
                "policy",
                before.id,
                project_id=before.project_id,
                details={"before": rules_to_dict(before.rules), "after": rules_to_dict(rules)},
            )
        )
    return updated


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{what} must be a list of strings")
    return tuple(value)


def profile_fields(data: dict[str, Any], base: Profile | None) -> dict[str, Any]:
    """Validated profile settings from a request body; `base` supplies defaults on update."""
    out: dict[str, Any] = {}
    for field_name, default in (("validity_days", 90), ("renew_before_days", 30)):
        value = data.get(field_name, getattr(base, field_name) if base else default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InvalidInput(f"{field_name} must be a positive integer")
        out[field_name] = value
    key_usages = _string_list(
        data.get(
            "key_usages",
            list(base.key_usages) if base else ["digital_signature", "key_encipherment"],
        ),
        "key_usages",
    )
    unknown = [k for k in key_usages if k not in KEY_USAGES]
    if unknown:
        raise InvalidInput(
            f"unknown key usages: {', '.join(unknown)} (allowed: {', '.join(sorted(KEY_USAGES))})"
        )
    out["key_usages"] = key_usages
    ekus = _string_list(
        data.get(
            "extended_key_usages", list(base.extended_key_usages) if base else ["server_auth"]
        ),
        "extended_key_usages",
    )
    for eku in ekus:
        try:
            eku_oid(eku)
        except ValueError:
            raise InvalidInput(f"unknown extended key usage '{eku}'") from None
    out["extended_key_usages"] = ekus
    key_type = data.get("default_key_type", base.default_key_type.value if base else "ec-p256")
    try:
        out["default_key_type"] = KeyType(key_type)
    except ValueError:
        raise InvalidInput(f"unknown key type '{key_type}'") from None
    enrollment = data.get("enrollment", base.enrollment if base else {})
    out["enrollment"] = check_methods(enrollment)
    name = data.get("name", base.name if base else data.get("slug"))
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name must be a non-empty string")
    out["name"] = name.strip()
    return out


async def create_profile(
    services: Services,
    tx: Tx,
    actor: Actor,
    project_id: uuid.UUID,
    data: dict[str, Any],
) -> Profile:
    slug = check_slug(data.get("slug"), "profile slug")
    issuer_type = _issuer_type(data.get("issuer_type"))
    ca_id = await _profile_ca(tx, project_id, issuer_type, data.get("ca_id"))
    policy_id = _uuid(data.get("policy_id"), "policy_id")
    policy = await tx.policies.get(policy_id)
    if policy is None or policy.project_id != project_id:
        raise NotFound(f"policy {policy_id} not found in this project")
    profile = Profile(
        id=new_id(),
        project_id=project_id,
        slug=slug,
        ca_id=ca_id,
        policy_id=policy_id,
        created_at=services.clock.now(),
        issuer_type=issuer_type,
        **profile_fields(data, None),
    )
    problems = validate_profile_against_policy(profile, policy.rules)
    if problems:
        raise InvalidInput("profile conflicts with its policy: " + "; ".join(problems))
    await tx.profiles.add(profile)
    await tx.audit.add(
        event(
            actor,
            profile.created_at,
            "profile.created",
            "profile",
            profile.id,
            project_id=project_id,
            details={
                "slug": slug,
                "issuer_type": issuer_type.value,
                "ca_id": str(ca_id) if ca_id else None,
                "policy_id": str(policy_id),
            },
        )
    )
    return profile


def _issuer_type(value: Any) -> IssuerType:
    if value is None:
        return IssuerType.CA
    try:
        return IssuerType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in IssuerType)
        raise InvalidInput(f"unknown issuer_type '{value}' (allowed: {allowed})") from None


async def _profile_ca(
    tx: Tx, project_id: uuid.UUID, issuer_type: IssuerType, value: Any
) -> uuid.UUID | None:
    """The CA a new profile issues through: one of its project's (an external CA too, so
    that a legacy project can hold its profiles), or None for a self-signed profile."""
    if issuer_type is IssuerType.SELF_SIGNED:
        if value is not None:
            raise InvalidInput(
                "a self-signed profile names no CA: give either ca_id or "
                "issuer_type 'self-signed', not both"
            )
        return None
    if value is None:
        raise InvalidInput("ca_id is required (or issuer_type 'self-signed')")
    ca_id = _uuid(value, "ca_id")
    ca = await tx.cas.get(ca_id)
    if ca is None or ca.project_id != project_id:
        raise NotFound(f"CA {ca_id} not found in this project")
    return ca_id


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{what} must be a UUID") from None


async def list_profiles(services: Services, project_ref: object | None) -> list[Profile]:
    async with services.db.transaction(read_only=True) as tx:
        project = await project_scope(tx, project_ref)
        return await tx.profiles.list(project.id)


async def get_profile(services: Services, profile_id: uuid.UUID) -> Profile:
    async with services.db.transaction(read_only=True) as tx:
        profile = await tx.profiles.get(profile_id)
    if profile is None:
        raise NotFound("profile not found")
    return profile


async def add_profile(
    services: Services, actor: Actor, project_ref: object | None, data: dict[str, Any]
) -> Profile:
    async with services.db.transaction() as tx:
        project = await project_scope(tx, project_ref, write=True)
        return await create_profile(services, tx, actor, project.id, data)


async def update_profile(
    services: Services, actor: Actor, profile_id: uuid.UUID, data: dict[str, Any]
) -> Profile:
    """Change a profile's defaults (its slug, CA and policy are fixed); the result must
    still satisfy its policy."""
    if {"slug", "ca_id", "policy_id", "issuer_type"} & set(data):
        raise InvalidInput(
            "slug, issuer_type, ca_id and policy_id cannot be changed; create a new profile"
        )
    async with services.db.transaction() as tx:
        before = await tx.profiles.get(profile_id)
        if before is None:
            raise NotFound("profile not found")
        updated = dataclasses.replace(before, **profile_fields(data, before))
        policy = await tx.policies.get(before.policy_id)
        if policy is not None:
            problems = validate_profile_against_policy(updated, policy.rules)
            if problems:
                raise InvalidInput("profile conflicts with its policy: " + "; ".join(problems))
        await tx.profiles.update(updated)
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "profile.updated",
                "profile",
                before.id,
                project_id=before.project_id,
                details={"before": _settings(before), "after": _settings(updated)},
            )
        )
    return updated


def _settings(p: Profile) -> dict[str, Any]:
    """A profile's settings as its audit events record them (its REST form without id,
    project_id and created_at)."""
    return {
        "slug": p.slug,
        "name": p.name,
        "issuer_type": p.issuer_type.value,
        "ca_id": str(p.ca_id) if p.ca_id else None,
        "policy_id": str(p.policy_id),
        "validity_days": p.validity_days,
        "renew_before_days": p.renew_before_days,
        "key_usages": list(p.key_usages),
        "extended_key_usages": list(p.extended_key_usages),
        "default_key_type": p.default_key_type.value,
        "enrollment": p.enrollment,
    }
