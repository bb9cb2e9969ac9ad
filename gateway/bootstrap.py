"""First start on an empty database: a working demo out of the box (DESIGN.md contract).

Everything is created in one transaction, so a crash half-way leaves an empty database
and the next start tries again. The secrets exist in plaintext only in bootstrap.json
(mode 0600); the log says where that file is, never what is in it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway.core.errors import Conflict
from gateway.core.model import (
    KeyType,
    NameRule,
    Organization,
    PolicyRules,
    PrincipalKind,
    ProductRole,
    ProjectStatus,
    SubjectRule,
    new_id,
)
from gateway.services import applications, cas, catalog
from gateway.services.audit import SYSTEM
from gateway.services.auth import create_principal, create_token
from gateway.services.graph import Services, write_private_file
from protocols.acme import settings as acme
from protocols.est import settings as est_setup
from protocols.scep import settings as scep

log = logging.getLogger(__name__)

DEMO_APPLICATION = "demo"
DEMO_PROFILE = "tls-server"
LEGACY_PROFILE = "legacy-tls-server"
# DESIGN.md: the demo's validators may reach loopback (explicitly listed), and any other
# address a name resolves to.
DEMO_ACME = {
    "enabled": True,
    # Every demo client (certbot, lego, …) registers with the one EAB key of bootstrap.json.
    "eab_reuse": True,
    "validation_networks": ["127.0.0.0/8", "::1/128", "0.0.0.0/0", "::/0"],
}

# DESIGN.md: the demo profile allows localhost, *.localhost, *.test, *.example.com and
# loopback IPs. A real deployment replaces this policy.
DEMO_NAMES = ("localhost", "*.localhost", "*.test", "*.example.com")
# Clients that still read the CN as a host name must not get one outside the DNS rules.
DEMO_RULES = PolicyRules(
    subject=(
        SubjectRule("CN", allow=(*DEMO_NAMES, "127.*", "::1")),
        *(SubjectRule(a) for a in ("O", "OU", "C", "ST", "L")),
    ),
    dns=NameRule(allow=DEMO_NAMES),
    ip=NameRule(allow=("127.0.0.0/8", "::1/128")),
    allowed_extended_key_usages=("server_auth", "client_auth"),
    max_validity_days=397,
)


async def bootstrap_if_empty(services: Services) -> dict[str, Any] | None:
    """Create the demo world if no organization exists; return what went into bootstrap.json."""
    config = services.config
    async with services.db.transaction(read_only=True) as tx:
        if await tx.organizations.list():
            return None
    key_type = KeyType(config.pki.key_type)
    try:
        async with services.db.transaction() as tx:
            now = services.clock.now()
            org = Organization(new_id(), "default", now)
            await tx.organizations.add(org)
            project = await catalog.create_project(services, tx, SYSTEM, "default", active=True)
            assert project.status is ProjectStatus.ACTIVE
            root = await cas.create_root(
                services,
                tx,
                SYSTEM,
                project_id=project.id,
                name="root",
                common_name="certgate Root CA",
                key_type=key_type,
                validity_days=config.pki.root_validity_days,
            )
            intermediate = await cas.create_intermediate(
                services,
                tx,
                SYSTEM,
                parent_id=root.id,
                name="issuing",
                common_name="certgate Issuing CA",
                key_type=key_type,
                validity_days=config.pki.intermediate_validity_days,
            )
            policy = await catalog.create_policy(
                services, tx, SYSTEM, project.id, "demo-tls", DEMO_RULES
            )
            profile = await catalog.create_profile(
                services,
                tx,
                SYSTEM,
                project.id,
                {
                    "slug": DEMO_PROFILE,
                    "name": "TLS server",
                    "ca_id": str(intermediate.id),
                    "policy_id": str(policy.id),
                    "validity_days": 90,
                    "renew_before_days": 30,
                    "key_usages": ["digital_signature", "key_encipherment"],
                    "extended_key_usages": ["server_auth"],
                },
            )
            app = await applications.create_application(
                services,
                tx,
                SYSTEM,
                DEMO_APPLICATION,
                "Demo application",
                "Created on first start; its profile only allows test names.",
            )
            await applications.attach_profile(services, tx, SYSTEM, app, profile)
            _, eab = await acme.configure_attachment(services, tx, SYSTEM, app, profile, DEMO_ACME)
            legacy = await catalog.create_profile(
                services,
                tx,
                SYSTEM,
                project.id,
                {
                    "slug": LEGACY_PROFILE,
                    "name": "TLS server (legacy profile-scoped enrollment)",
                    "ca_id": str(intermediate.id),
                    "policy_id": str(policy.id),
                    "validity_days": 90,
                    "renew_before_days": 30,
                    "key_usages": ["digital_signature", "key_encipherment"],
                    "extended_key_usages": ["server_auth"],
                },
            )
            legacy, legacy_eab = await acme.configure_legacy(
                services, tx, SYSTEM, legacy, DEMO_ACME
            )
            assert eab is not None and legacy_eab is not None
            est_data = await est_setup.bootstrap_est(services, tx, SYSTEM, app, profile, legacy)
            scep_data = await scep.bootstrap_scep(services, tx, SYSTEM, app, profile, legacy)
            admin = await create_principal(
                tx,
                SYSTEM,
                now,
                "admin",
                kind=PrincipalKind.USER,
                product_role=ProductRole.ADMIN,
            )
            _, token = await create_token(tx, SYSTEM, now, admin.id, "bootstrap")
    except Conflict:
        # Another process sharing the database bootstrapped first.
        log.info("another process bootstrapped the database first")
        return None
    data: dict[str, Any] = {
        "admin_token": token,
        "base_url": config.base_url,
        "https_base_url": config.https_base_url if config.tls.enabled else None,
        "application": app.slug,
        "profile": profile.slug,
        "profile_id": str(profile.id),
        "ca_chain_pem": intermediate.full_chain_pem,
        "root_ca_path": str((config.home / "root-ca.pem").resolve()),
        "acme_directory": config.base_url + acme.directory_path(app.slug, profile.slug),
        "acme_eab_kid": eab.kid,
        "acme_eab_hmac_key": eab.hmac_key,
        "legacy_profile": legacy.slug,
        "legacy_profile_id": str(legacy.id),
        "legacy_acme_directory": config.base_url + acme.legacy_directory_path(legacy.id),
        "legacy_acme_eab_kid": legacy_eab.kid,
        "legacy_acme_eab_hmac_key": legacy_eab.hmac_key,
        **est_data,
        **scep_data,
    }
    path = config.home / "bootstrap.json"
    write_private_file(path, json.dumps(data, indent=2) + "\n")
    log.info("bootstrapped a new database; credentials written to %s", path.resolve())
    return data


async def write_root_ca(services: Services) -> Path:
    """Write the active project's root certificate(s) where clients can pick them up."""
    async with services.db.transaction(read_only=True) as tx:
        project = await catalog.active_project(tx)
        roots = [
            ca
            for ca in await tx.cas.list(project.id)
            if ca.parent_id is None and ca.kind.value == "root"
        ]
    path = services.config.home / "root-ca.pem"
    path.write_text("".join(ca.certificate_pem for ca in roots))
    return path
