"""Legacy approval policies (issue 12, item 5): a project-level policy gates the legacy
profile-scoped enrollment of one profile as an application's policy gates that
application's; it can be read, edited and deleted through
/api/v1/projects/{id}/approval-policies, never created there (409 legacy_read_only).

Legacy policies come with a legacy project, so the tests put one in through the store."""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.databases import Seed
from tests.integration.api.conftest import Gateway
from tests.integration.api.legacy_helpers import (
    add_legacy_policy,
    legacy_est_enroll,
    proxied_gateway,
)
from tests.integration.est.est_helpers import b64, basic, certs_from_cms, csr_der, keygen_parts


@pytest.fixture
async def gateway(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> Gateway:
    return await proxied_gateway(aiohttp_client, tmp_path / "home", database_url, seed_gateway)


async def project_id(gw: Gateway) -> str:
    return str((await gw.get("/api/v1/projects"))["items"][0]["id"])


async def admin_id(gw: Gateway) -> str:
    return str((await gw.get("/api/v1/me"))["principal"]["id"])


async def est_post(gw: Gateway, der: bytes) -> tuple[int, dict[str, str], bytes]:
    boot = gw.bootstrap
    base = urllib.parse.urlsplit(boot["legacy_est_base_url"]).path
    resp = await gw.client.post(
        f"{base}/simpleenroll",
        data=b64(der),
        headers={
            "Content-Type": "application/pkcs10",
            **basic(boot["legacy_est_username"], boot["legacy_est_password"]),
        },
    )
    return resp.status, dict(resp.headers), await resp.read()


async def test_ok_legacy_policy_gates_legacy_enrollment(gateway: Gateway) -> None:
    pid = await project_id(gateway)
    await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [await admin_id(gateway)]
    )
    der, _ = csr_der("held.example.com")
    status, headers, _ = await est_post(gateway, der)
    assert status == 202 and int(headers["Retry-After"]) > 0  # EST's "pending" (RFC 7030 §4.2.3)
    # The device repeating the request joins the same request.
    assert (await est_post(gateway, der))[0] == 202

    page = await gateway.get(f"/api/v1/projects/{pid}/requests")
    (held,) = page["items"]
    assert held["application_id"] is None and held["state"] == "open"
    assert held["profile_id"] == gateway.bootstrap["legacy_profile_id"]
    assert held["method"] == "est" and held["subject"] == "CN=held.example.com"
    one = await gateway.get(f"/api/v1/projects/{pid}/requests/{held['id']}")
    assert one["id"] == held["id"]
    # Not an application's request.
    await gateway.get(f"/api/v1/applications/demo/requests/{held['id']}", status=404)

    approved = await gateway.post(
        f"/api/v1/projects/{pid}/requests/{held['id']}/approve", {}, status=200
    )
    assert approved["state"] == "issued" and approved["certificate_id"]
    status, _, body = await est_post(gateway, der)
    assert status == 200, body
    (cert,) = certs_from_cms(body)
    assert cert.subject.rfc4514_string() == "CN=held.example.com"
    listed = await gateway.get(f"/api/v1/certificates?profile_id={held['profile_id']}")
    assert [i["id"] for i in listed["items"]] == [approved["certificate_id"]]
    assert listed["items"][0]["application"] is None

    # Application enrollment of the same project is not held by a legacy policy.
    await gateway.post(gateway.issue_path(), {"sans": ["free.test"]}, status=201)


async def test_ok_legacy_serverkeygen_key_held_until_approved(gateway: Gateway) -> None:
    """RFC 7030 §4.4 under a legacy policy: the 202 cannot carry the generated key, so it is
    held (encrypted) until the device repeats the request after the approval, then handed
    out once; the repeats join one request rather than making a new key each time."""
    pid = await project_id(gateway)
    await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [await admin_id(gateway)]
    )
    boot = gateway.bootstrap
    url = urllib.parse.urlsplit(boot["legacy_est_base_url"]).path + "/serverkeygen"
    auth = basic(boot["legacy_est_username"], boot["legacy_est_password"])
    der, _ = csr_der("legacy-keygen.example.com")

    async def post() -> tuple[int, Any, bytes]:
        resp = await gateway.client.post(
            url, data=b64(der), headers={"Content-Type": "application/pkcs10", **auth}
        )
        return resp.status, resp.headers, await resp.read()

    for _ in range(2):
        status, _, body = await post()
        assert status == 202, body
    (held,) = (await gateway.get(f"/api/v1/projects/{pid}/requests?state=open"))["items"]
    await gateway.post(f"/api/v1/projects/{pid}/requests/{held['id']}/approve", {}, status=200)
    status, headers, body = await post()
    assert status == 200, body
    key, cert = keygen_parts(headers, body)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=legacy-keygen.example.com"
    # Handed out once: a repeat now is a new enrollment (a new request, a new key).
    assert (await post())[0] == 202


async def test_ok_reject(gateway: Gateway) -> None:
    pid = await project_id(gateway)
    await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [await admin_id(gateway)]
    )
    der, _ = csr_der("refused.example.com")
    assert (await est_post(gateway, der))[0] == 202
    (held,) = (await gateway.get(f"/api/v1/projects/{pid}/requests?state=open"))["items"]
    path = f"/api/v1/projects/{pid}/requests/{held['id']}/reject"
    missing = await gateway.post(path, {}, status=400)
    assert missing["error"]["code"] == "comment_required"
    rejected = await gateway.post(path, {"comment": "not ours"}, status=200)
    assert rejected["state"] == "rejected" and rejected["comment"] == "not ours"
    assert (await gateway.get(f"/api/v1/projects/{pid}/requests?state=open"))["items"] == []


async def test_ok_read_edit_delete(gateway: Gateway) -> None:
    pid = await project_id(gateway)
    admin = await admin_id(gateway)
    policy_id = await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [admin]
    )
    base = f"/api/v1/projects/{pid}/approval-policies"
    (listed,) = (await gateway.get(base))["items"]
    assert listed["id"] == policy_id and listed["project_id"] == pid
    assert listed["profile"] == gateway.bootstrap["legacy_profile"]
    assert listed["steps"] == [{"approvers": [admin], "required": 1}]
    assert listed["request_ttl_hours"] == 1
    # An application's policy is not a legacy one.
    app_policy = await gateway.client.put(
        "/api/v1/applications/demo/profiles/tls-server/approval-policy",
        json={"steps": [{"approvers": [admin]}]},
        headers=gateway.auth,
    )
    assert app_policy.status == 201
    assert [p["id"] for p in (await gateway.get(base))["items"]] == [policy_id]
    await gateway.get(f"{base}/{(await app_policy.json())['id']}", status=404)

    resp = await gateway.client.put(
        f"{base}/{policy_id}",
        json={"steps": [{"approvers": ["admin"], "required": 1}], "request_ttl_hours": 24},
        headers=gateway.auth,
    )
    edited = await resp.json()
    assert resp.status == 200, edited
    assert edited["id"] == policy_id and edited["request_ttl_hours"] == 24
    assert (await gateway.get(f"{base}/{policy_id}"))["request_ttl_hours"] == 24
    bad = await gateway.client.put(f"{base}/{policy_id}", json={"steps": []}, headers=gateway.auth)
    assert bad.status == 400

    der, _ = csr_der("waiting.example.com")
    assert (await est_post(gateway, der))[0] == 202
    resp = await gateway.client.delete(f"{base}/{policy_id}", headers=gateway.auth)
    assert resp.status == 200
    assert await resp.json() == {"deleted": True, "cancelled_requests": 1}
    assert (await gateway.get(base))["items"] == []
    await gateway.get(f"{base}/{policy_id}", status=404)
    # Without a policy the legacy endpoint issues at once again.
    assert (await legacy_est_enroll(gateway, "free.example.com"))[0] == 200
    audit = await gateway.get("/api/v1/audit?action=approval_policy.deleted")
    assert [e["target_id"] for e in audit["items"]] == [policy_id]


async def test_fail_create_is_legacy_read_only(gateway: Gateway) -> None:
    pid = await project_id(gateway)
    body = {"steps": [{"approvers": [await admin_id(gateway)]}]}
    data = await gateway.post(f"/api/v1/projects/{pid}/approval-policies", body, status=409)
    assert data["error"]["code"] == "legacy_read_only"
    assert "inside an Application" in data["error"]["message"]
    # Even without a body; an unknown project is still not found.
    resp = await gateway.client.post(
        f"/api/v1/projects/{pid}/approval-policies", headers=gateway.auth
    )
    assert resp.status == 409
    missing = f"/api/v1/projects/{uuid.uuid4()}/approval-policies"
    assert (await gateway.post(missing, body, status=404))["error"]["code"] == "not_found"


async def test_fail_other_project_sees_nothing(gateway: Gateway) -> None:
    pid = await project_id(gateway)
    policy_id = await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [await admin_id(gateway)]
    )
    der, _ = csr_der("mine.example.com")
    assert (await est_post(gateway, der))[0] == 202
    (held,) = (await gateway.get(f"/api/v1/projects/{pid}/requests"))["items"]
    other = (await gateway.post("/api/v1/projects", {"name": "other"}, status=201))["id"]
    await gateway.get(f"/api/v1/projects/{other}/approval-policies/{policy_id}", status=404)
    assert (await gateway.get(f"/api/v1/projects/{other}/approval-policies"))["items"] == []
    assert (await gateway.get(f"/api/v1/projects/{other}/requests"))["items"] == []
    await gateway.get(f"/api/v1/projects/{other}/requests/{held['id']}", status=404)
    await gateway.post(f"/api/v1/projects/{other}/requests/{held['id']}/approve", {}, status=404)


async def test_fail_not_an_approver(gateway: Gateway) -> None:
    """A Product Admin may reach the routes, but only the policy's approvers decide."""
    pid = await project_id(gateway)
    someone = await gateway.post("/api/v1/principals", {"name": "approver"}, status=201)
    await add_legacy_policy(
        gateway.services, gateway.bootstrap["legacy_profile_id"], [someone["id"]]
    )
    der, _ = csr_der("other.example.com")
    assert (await est_post(gateway, der))[0] == 202
    (held,) = (await gateway.get(f"/api/v1/projects/{pid}/requests"))["items"]
    data = await gateway.post(
        f"/api/v1/projects/{pid}/requests/{held['id']}/approve", {}, status=403
    )
    assert data["error"]["code"] == "not_an_approver"
