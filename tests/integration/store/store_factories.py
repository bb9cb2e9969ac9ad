"""Builders for domain objects used by the store tests (valid, unique by default)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.core.model import (
    Application,
    CAKind,
    CAStatus,
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    EnrollmentMethod,
    KeyType,
    NameRule,
    Organization,
    Policy,
    PolicyRules,
    Profile,
    ProfileAttachment,
    Project,
    ProjectStatus,
    new_id,
)
from store.db import Database, Tx

# Microsecond precision on purpose: both backends must keep it.
NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def uid() -> str:
    return uuid.uuid4().hex[:8]


def org(**kw: Any) -> Organization:
    values: dict[str, Any] = {"id": new_id(), "name": f"org-{uid()}", "created_at": NOW}
    return Organization(**(values | kw))


def project(organization_id: uuid.UUID, **kw: Any) -> Project:
    values: dict[str, Any] = {
        "id": new_id(),
        "organization_id": organization_id,
        "name": f"project-{uid()}",
        "status": ProjectStatus.LEGACY,
        "wrapped_data_key": secrets.token_bytes(60),
        "created_at": NOW,
    }
    return Project(**(values | kw))


def ca(project_id: uuid.UUID, **kw: Any) -> CertificateAuthority:
    values: dict[str, Any] = {
        "id": new_id(),
        "project_id": project_id,
        "name": f"ca-{uid()}",
        "kind": CAKind.ROOT,
        "parent_id": None,
        "key_type": KeyType.EC_P256,
        "certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "chain_pem": "",
        "subject": "CN=Test Root",
        "serial": secrets.token_hex(16),
        "not_before": NOW,
        "not_after": NOW + timedelta(days=3650),
        "status": CAStatus.ACTIVE,
        "encrypted_key": secrets.token_bytes(100),
        "created_at": NOW,
    }
    return CertificateAuthority(**(values | kw))


def policy(project_id: uuid.UUID, **kw: Any) -> Policy:
    rules = PolicyRules(dns=NameRule(allow=("*.example.com",), deny=("bad.example.com",)))
    values: dict[str, Any] = {
        "id": new_id(),
        "project_id": project_id,
        "name": f"policy-{uid()}",
        "rules": rules,
        "created_at": NOW,
    }
    return Policy(**(values | kw))


def profile(project_id: uuid.UUID, ca_id: uuid.UUID, policy_id: uuid.UUID, **kw: Any) -> Profile:
    values: dict[str, Any] = {
        "id": new_id(),
        "project_id": project_id,
        "slug": f"profile-{uid()}",
        "name": "TLS server",
        "ca_id": ca_id,
        "policy_id": policy_id,
        "validity_days": 90,
        "key_usages": ("digital_signature", "key_encipherment"),
        "extended_key_usages": ("server_auth",),
        "renew_before_days": 30,
        "default_key_type": KeyType.EC_P256,
        "enrollment": {"acme": {"enabled": True, "eab_required": True}, "est": {}},
        "created_at": NOW,
    }
    return Profile(**(values | kw))


def application(project_id: uuid.UUID, **kw: Any) -> Application:
    values: dict[str, Any] = {
        "id": new_id(),
        "project_id": project_id,
        "slug": f"app-{uid()}",
        "name": "Payments API",
        "description": "takes the money",
        "created_at": NOW,
    }
    return Application(**(values | kw))


def attachment(application_id: uuid.UUID, profile_id: uuid.UUID, **kw: Any) -> ProfileAttachment:
    values: dict[str, Any] = {
        "id": new_id(),
        "application_id": application_id,
        "profile_id": profile_id,
        "methods": {"api": {"enabled": True}, "acme": {"enabled": False}},
        "created_at": NOW,
    }
    return ProfileAttachment(**(values | kw))


@dataclass(frozen=True)
class World:
    """One organization with an active project, a CA, a policy, a profile, an app."""

    org: Organization
    project: Project
    ca: CertificateAuthority
    policy: Policy
    profile: Profile
    app: Application

    def certificate(self, **kw: Any) -> Certificate:
        values: dict[str, Any] = {
            "id": new_id(),
            "serial": secrets.token_hex(16),
            "project_id": self.project.id,
            "ca_id": self.ca.id,
            "profile_id": self.profile.id,
            "application_id": self.app.id,
            "subject": "CN=www.example.com",
            "common_name": "www.example.com",
            "sans": ("dns:www.example.com", "ip:127.0.0.1"),
            "key_type": "ec-p256",
            "not_before": NOW,
            "not_after": NOW + timedelta(days=90),
            "status": CertificateStatus.ACTIVE,
            "revoked_at": None,
            "revocation_reason": None,
            "certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
            "chain_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "method": EnrollmentMethod.API,
            "requester": "token:ops",
            "renewed_from": None,
            "created_at": NOW,
        }
        return Certificate(**(values | kw))


async def add_world(tx: Tx) -> World:
    o = org()
    p = project(o.id, status=ProjectStatus.ACTIVE)
    c = ca(p.id)
    pol = policy(p.id)
    prof = profile(p.id, c.id, pol.id)
    app = application(p.id)
    await tx.organizations.add(o)
    await tx.projects.add(p)
    await tx.cas.add(c)
    await tx.policies.add(pol)
    await tx.profiles.add(prof)
    await tx.applications.add(app)
    return World(o, p, c, pol, prof, app)


async def make_world(database: Database) -> World:
    async with database.transaction() as tx:
        return await add_world(tx)
