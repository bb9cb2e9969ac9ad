"""issue 3, "Done when", against a listening `certgate serve` over plain HTTP: a request
under a one-step approval policy gets 202, the approver approves, the requester downloads a
certificate that verifies against the root, and the audit log names each principal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

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


async def _member(api: Api, admin: str, app: str, name: str, role: str) -> tuple[str, str]:
    """A Product Member with `role` in `app`: (principal id, API token)."""
    principal, _ = await api.call(
        "POST",
        "/api/v1/principals",
        admin,
        {"name": name, "kind": "user", "product_role": "member"},
        status=201,
    )
    token, _ = await api.call(
        "POST", f"/api/v1/principals/{principal['id']}/tokens", admin, {}, status=201
    )
    await api.call(
        "POST",
        f"/api/v1/applications/{app}/members",
        admin,
        {"principal": principal["id"], "role": role},
        status=201,
    )
    return principal["id"], token["token"]


async def test_ok_one_step_approval_end_to_end(served, tmp_path: Path) -> None:
    """Issue 3, "done when": an Operator asks under a one-step approval policy, gets 202,
    the named approver approves, the Operator downloads; the audit log names each actor."""
    boot = served.bootstrap
    admin = boot["admin_token"]
    app, profile = boot["application"], boot["profile"]
    async with aiohttp.ClientSession() as session:
        api = Api(session, boot["base_url"])
        _, operator = await _member(api, admin, app, "olga", "operator")
        approver_id, approver = await _member(api, admin, app, "victor", "operator")
        await api.call(
            "PUT",
            f"/api/v1/applications/{app}/profiles/{profile}/approval-policy",
            admin,
            {"steps": [{"approvers": [approver_id], "required": 1}]},
            status=201,
        )

        csr, _ = make_csr("approved.localhost", ["approved.localhost", "127.0.0.1"])
        pending, headers = await api.call(
            "POST",
            f"/api/v1/applications/{app}/profiles/{profile}/certificates",
            operator,
            {"csr": csr},
            status=202,
        )
        assert pending["status"] == "pending" and int(headers["Retry-After"]) > 0
        request_path = f"/api/v1/applications/{app}/requests/{pending['request_id']}"
        waiting, _ = await api.call("GET", request_path, operator)
        assert waiting["state"] == "open" and "certificate_pem" not in waiting
        # The requester is not an approver of its own request.
        await api.call("POST", request_path + "/approve", operator, {}, status=403)

        approved, _ = await api.call("POST", request_path + "/approve", approver, {})
        assert approved["state"] == "issued"

        fetched, _ = await api.call("GET", request_path, operator)
        audit, _ = await api.call("GET", f"/api/v1/applications/{app}/audit?limit=50", operator)
    assert fetched["state"] == "issued" and fetched["certificate_id"] == approved["certificate_id"]
    root = (served.home / "root-ca.pem").read_text()
    result = openssl_verify(tmp_path, root, fetched["chain_pem"], fetched["certificate_pem"])
    assert result.returncode == 0, result.stdout + result.stderr

    trail = [
        (e["action"], e["actor"])
        for e in reversed(audit["items"])
        if e["target_id"] in (pending["request_id"], fetched["certificate_id"])
    ]
    assert trail == [
        ("request.created", "principal:olga"),
        ("request.approved", "principal:victor"),
        ("certificate.issued", "principal:olga"),
    ]
