"""Helpers for tests that issue through a legacy profile endpoint from the REST test
gateway: a gateway that trusts the test client as a TLS-terminating proxy (EST enrollment
needs HTTPS, RFC 7030 §3.2.1) and EST simpleenroll with the bootstrap's legacy credentials."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.app import create_app
from gateway.core.model import ApprovalPolicy, ApprovalStep, new_id
from gateway.services.graph import Services
from tests.helpers.databases import Seed
from tests.integration.api.conftest import Gateway, make_config
from tests.integration.est.est_helpers import b64, basic, certs_from_cms, csr_der


async def proxied_gateway(
    aiohttp_client: Any, home: Path, database_url: str, seed_gateway: Seed
) -> Gateway:
    """The API conftest's gateway, trusting 127.0.0.1 (the test client) as a proxy."""
    config = make_config(home, database_url)
    config.server.trusted_proxies = ["127.0.0.1/32", "::1"]
    seed_gateway(config)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    return Gateway(client, config, bootstrap)


async def legacy_est_enroll(gw: Gateway, cn: str) -> tuple[int, x509.Certificate | None]:
    """simpleenroll through the legacy profile's EST URL with the bootstrap's credentials."""
    boot = gw.bootstrap
    base = urllib.parse.urlsplit(boot["legacy_est_base_url"]).path
    der, _ = csr_der(cn)
    resp = await gw.client.post(
        f"{base}/simpleenroll",
        data=b64(der),
        headers={
            "Content-Type": "application/pkcs10",
            **basic(boot["legacy_est_username"], boot["legacy_est_password"]),
        },
    )
    body = await resp.read()
    if resp.status != 200:
        return resp.status, None
    (cert,) = certs_from_cms(body)
    assert cert.subject.rfc4514_string() == f"CN={cn}"
    return resp.status, cert


async def add_legacy_policy(
    services: Services, profile_id: str, approvers: list[str], required: int = 1
) -> str:
    """A legacy policy on a profile, as a legacy project brings it (the REST API never
    creates one)."""
    pid = uuid.UUID(profile_id)
    async with services.db.transaction() as tx:
        profile = await tx.profiles.get(pid)
        assert profile is not None
        policy = ApprovalPolicy(
            id=new_id(),
            application_id=None,
            profile_id=pid,
            steps=(ApprovalStep(tuple(uuid.UUID(a) for a in approvers), required),),
            bypass=(),
            request_ttl_seconds=3600,
            created_at=datetime.now(UTC),
            project_id=profile.project_id,
        )
        await tx.approval_policies.add_legacy(policy)
    return str(policy.id)
