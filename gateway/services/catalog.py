"""Projects, policies, profiles, applications and profile attachments."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.methods import check_methods as check_methods
from gateway.core.model import (
    Application,
    EnrollmentMethod,
    KeyType,
    Organization,
    Policy,
    PolicyRules,
    Profile,
    ProfileAttachment,
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


async def activate_project(
    services: Services, tx: Tx, actor: Actor, project_id: uuid.UUID
) -> Project:
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
    ca_id, policy_id = _uuid(data.get("ca_id"), "ca_id"), _uuid(data.get("policy_id"), "policy_id")
    ca = await tx.cas.get(ca_id)
    if ca is None or ca.project_id != project_id:
        raise NotFound(f"CA {ca_id} not found in this project")
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
            details={"slug": slug, "ca_id": str(ca_id), "policy_id": str(policy_id)},
        )
    )
    return profile


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{what} must be a UUID") from None


async def create_application(
    services: Services, tx: Tx, actor: Actor, slug: str, name: str | None, description: str = ""
) -> Application:
    project = await active_project(tx)
    app = Application(
        id=new_id(),
        project_id=project.id,
        slug=check_slug(slug, "application slug"),
        name=(name or slug).strip(),
        description=description,
        created_at=services.clock.now(),
    )
    await tx.applications.add(app)
    await tx.audit.add(
        event(
            actor,
            app.created_at,
            "application.created",
            "application",
            app.id,
            project_id=project.id,
            application_id=app.id,
            details={"slug": app.slug},
        )
    )
    return app


async def attach_profile(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    methods: dict[str, dict[str, Any]] | None = None,
) -> ProfileAttachment:
    if profile.project_id != app.project_id:
        raise InvalidInput("only profiles of the active project can be attached to an application")
    if await tx.attachments.get(app.id, profile.id) is not None:
        raise Conflict(f"profile '{profile.slug}' is already attached to '{app.slug}'")
    attachment = ProfileAttachment(
        id=new_id(),
        application_id=app.id,
        profile_id=profile.id,
        methods=check_methods(methods if methods is not None else {"api": {"enabled": True}}),
        created_at=services.clock.now(),
    )
    await tx.attachments.add(attachment)
    await tx.audit.add(
        event(
            actor,
            attachment.created_at,
            "application.profile_attached",
            "attachment",
            attachment.id,
            project_id=app.project_id,
            application_id=app.id,
            details={"profile": profile.slug, "methods": attachment.methods},
        )
    )
    return attachment
