"""issue 3, "Done when", against a listening `certgate serve` over plain HTTP: a request
under a one-step approval policy gets 202, the approver approves, the requester downloads a
certificate that verifies against the root, and the audit log names each principal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from store.db import Database
from store.filters import AuditFilter
from tests.helpers.x509util import make_csr, openssl_verify

pytestmark = pytest.mark.e2e


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, token: str, body: Any = None, *, status: int = 200
    ) -> tuple[Any, aiohttp.typedefs.LooseHeaders]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            data = await resp.json()
            assert resp.status == status, data
            return data, resp.headers


async def test_ok_one_step_approval_end_to_end(served, tmp_path: Path) -> None:
    boot = served.bootstrap
    admin = boot["admin_token"]
    app, profile = boot["application"], boot["profile"]
    async with aiohttp.ClientSession() as session:
        api = Api(session, boot["base_url"])
        approver, _ = await api.call(
            "POST",
            "/api/v1/principals",
            admin,
            {"name": "approver", "kind": "user", "product_role": "admin"},
            status=201,
        )
        token, _ = await api.call(
            "POST", f"/api/v1/principals/{approver['id']}/tokens", admin, {}, status=201
        )
        approver_token = token["token"]
        await api.call(
            "PUT",
            f"/api/v1/applications/{app}/profiles/{profile}/approval-policy",
            admin,
            {"steps": [{"approvers": [approver["id"]], "required": 1}]},
            status=201,
        )

        csr, _ = make_csr("approved.localhost", ["approved.localhost", "127.0.0.1"])
        pending, headers = await api.call(
            "POST",
            f"/api/v1/applications/{app}/profiles/{profile}/certificates",
            admin,
            {"csr": csr},
            status=202,
        )
        assert pending["status"] == "pending" and int(headers["Retry-After"]) > 0
        request_path = f"/api/v1/applications/{app}/requests/{pending['request_id']}"
        waiting, _ = await api.call("GET", request_path, admin)
        assert waiting["state"] == "open" and "certificate_pem" not in waiting

        approved, _ = await api.call("POST", request_path + "/approve", approver_token, {})
        assert approved["state"] == "issued"

        fetched, _ = await api.call("GET", request_path, admin)
    assert fetched["state"] == "issued" and fetched["certificate_id"] == approved["certificate_id"]
    root = (served.home / "root-ca.pem").read_text()
    result = openssl_verify(tmp_path, root, fetched["chain_pem"], fetched["certificate_pem"])
    assert result.returncode == 0, result.stdout + result.stderr

    db = Database.create(served.env["CERTGATE_DATABASE__URL"])
    try:
        async with db.transaction(read_only=True) as tx:
            request_events = await tx.audit.list(AuditFilter(target_id=pending["request_id"]))
            cert_events = await tx.audit.list(AuditFilter(target_id=fetched["certificate_id"]))
    finally:
        await db.close()
    trail = [(e.action, e.actor) for e in reversed(request_events.items)]
    assert trail == [
        ("request.created", "principal:admin"),
        ("request.approved", "principal:approver"),
    ]
    assert [(e.action, e.actor) for e in cert_events.items] == [
        ("certificate.issued", "principal:admin")
    ]
    assert cert_events.items[0].details["request_id"] == pending["request_id"]
