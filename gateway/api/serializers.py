"""Domain objects -> JSON. Secrets (wrapped keys, hashes, encrypted blobs) never appear."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.core.model import (
    Application,
    Certificate,
    CertificateAuthority,
    Policy,
    Principal,
    Profile,
    ProfileAttachment,
    Project,
)
from gateway.core.policy_codec import rules_to_dict


def ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def project(p: Project) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "status": p.status.value,
        "created_at": ts(p.created_at),
        "exported_at": ts(p.exported_at),
    }


def ca(c: CertificateAuthority) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "project_id": str(c.project_id),
        "name": c.name,
        "kind": c.kind.value,
        "parent_id": str(c.parent_id) if c.parent_id else None,
        "key_type": c.key_type.value,
        "subject": c.subject,
        "serial": c.serial,
        "not_before": ts(c.not_before),
        "not_after": ts(c.not_after),
        "status": c.status.value,
        "certificate_pem": c.certificate_pem,
        "chain_pem": c.chain_pem,
        "created_at": ts(c.created_at),
        "exportable": c.exportable,
    }


def policy(p: Policy) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "project_id": str(p.project_id),
        "name": p.name,
        "rules": rules_to_dict(p.rules),
        "created_at": ts(p.created_at),
    }


def profile(p: Profile) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "project_id": str(p.project_id),
        "slug": p.slug,
        "name": p.name,
        "ca_id": str(p.ca_id) if p.ca_id else None,
        "issuer_type": p.issuer_type.value,
        "policy_id": str(p.policy_id),
        "validity_days": p.validity_days,
        "renew_before_days": p.renew_before_days,
        "key_usages": list(p.key_usages),
        "extended_key_usages": list(p.extended_key_usages),
        "default_key_type": p.default_key_type.value,
        "enrollment": p.enrollment,
        "created_at": ts(p.created_at),
    }


def application(a: Application) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "project_id": str(a.project_id),
        "slug": a.slug,
        "name": a.name,
        "description": a.description,
        "created_at": ts(a.created_at),
    }


def attachment(a: ProfileAttachment, profile_slug: str) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "application_id": str(a.application_id),
        "profile_id": str(a.profile_id),
        "profile": profile_slug,
        "methods": a.methods,
        "created_at": ts(a.created_at),
    }


def certificate(c: Certificate) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "serial": c.serial,
        "application_id": str(c.application_id) if c.application_id else None,
        "profile_id": str(c.profile_id),
        "ca_id": str(c.ca_id) if c.ca_id else None,
        "subject": c.subject,
        "common_name": c.common_name,
        "sans": list(c.sans),
        "key_type": c.key_type,
        "not_before": ts(c.not_before),
        "not_after": ts(c.not_after),
        "status": c.status.value,
        "revoked_at": ts(c.revoked_at),
        "revocation_reason": c.revocation_reason.value if c.revocation_reason else None,
        "method": c.method.value,
        "requester": c.requester,
        "renewed_from": str(c.renewed_from) if c.renewed_from else None,
        "renewed_by": str(c.renewed_by) if c.renewed_by else None,
        "certificate_pem": c.certificate_pem,
        "chain_pem": c.chain_pem,
        "created_at": ts(c.created_at),
    }


def principal(p: Principal) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "kind": p.kind.value,
        "product_role": p.product_role.value if p.product_role else None,
        "disabled": p.disabled,
        "created_at": ts(p.created_at),
    }
