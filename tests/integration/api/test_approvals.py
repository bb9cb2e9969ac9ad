"""Approval policies and certificate requests through the REST API (issue 3).

The requester is the bootstrap admin ("principal:admin"); approvers are principals made
through /api/v1/principals. They are Product Admins so that route permissions let them
through whatever their application role; being named in the step is what is tested here.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from store.filters import AuditFilter
from tests.helpers.x509util import make_csr, openssl_verify

POLICY = "/api/v1/applications/demo/profiles/tls-server/approval-policy"
REQUESTS = "/api/v1/applications/demo/requests"


async def principal(
    gateway, name: str, *, kind: str = "user", role: str | None = "admin"
) -> tuple[str, str]:
    """(principal id, token) of a new principal."""
    body: dict[str, Any] = {"name": name, "kind": kind}
    if role:
        body["product_role"] = role
    created = await gateway.post("/api/v1/principals", body, status=201)
    token = await gateway.post(
        f"/api/v1/principals/{created['id']}/tokens", {"name": "t"}, status=201
    )
    return created["id"], token["token"]


async def admin_id(gateway) -> str:
    items = (await gateway.get("/api/v1/principals"))["items"]
    return next(p["id"] for p in items if p["name"] == "admin")


async def put_policy(gateway, body: dict[str, Any], status: int | None = None) -> Any:
    resp = await gateway.client.put(POLICY, json=body, headers=gateway.auth)
    data = await resp.json()
    if status is not None:
        assert resp.status == status, data
    return data


async def ask(gateway, cn: str = "appr.localhost", csr: str | None = None) -> tuple[str, str]:
    """Request a certificate that needs approval: (request id, csr)."""
    csr = csr or make_csr(cn)[0]
    resp = await gateway.client.post(gateway.issue_path(), json={"csr": csr}, headers=gateway.auth)
    data = await resp.json()
    assert resp.status == 202, data
    assert data["status"] == "pending"
    assert int(resp.headers["Retry-After"]) > 0
    return data["request_id"], csr


async def decide(
    gateway, request_id: str, what: str, token: str | None, body: Any = None, status: int = 200
) -> Any:
    return await gateway.post(
        f"{REQUESTS}/{request_id}/{what}", body or {}, token=token, status=status
    )


async def audit(gateway, target_id: str) -> list[tuple[str, str]]:
    async with gateway.services.db.transaction(read_only=True) as tx:
        page = await tx.audit.list(AuditFilter(target_id=target_id), limit=100)
    return [(e.action, e.actor) for e in reversed(page.items)]


async def certificate_count(gateway) -> int:
    return (await gateway.get("/api/v1/applications/demo/certificates?limit=1"))["total"]


async def test_ok_pending_approve_fetch_certificate(gateway, tmp_path: Path) -> None:
    approver, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"], "required": 1}]}, status=201)
    request_id, _ = await ask(gateway)
    got = await gateway.get(f"{REQUESTS}/{request_id}")
    assert got["state"] == "open" and got["step"] == 0
    assert got["requester"] == "principal:admin"
    assert got["requester_id"] == await admin_id(gateway)
    assert got["subject"] == "CN=appr.localhost" and got["sans"] == ["dns:appr.localhost"]
    assert "certificate_pem" not in got
    listed = await gateway.get(f"{REQUESTS}?state=open")
    assert [r["id"] for r in listed["items"]] == [request_id]

    approved = await decide(gateway, request_id, "approve", token, {"comment": "looks right"})
    assert approved["state"] == "issued" and approved["certificate_id"]
    assert approved["approvals"][0]["principal_id"] == approver

    # The requester fetches the certificate from the request.
    fetched = await gateway.get(f"{REQUESTS}/{request_id}")
    assert fetched["state"] == "issued"
    root = (gateway.config.home / "root-ca.pem").read_text()
    result = openssl_verify(tmp_path, root, fetched["chain_pem"], fetched["certificate_pem"])
    assert result.returncode == 0, result.stdout + result.stderr
    cert = await gateway.get(f"/api/v1/applications/demo/certificates/{approved['certificate_id']}")
    assert cert["certificate_pem"] == fetched["certificate_pem"]
    assert cert["requester"] == "principal:admin"
    assert (await gateway.get(f"{REQUESTS}?state=open"))["total"] == 0
    assert await audit(gateway, request_id) == [
        ("request.created", "principal:admin"),
        ("request.approved", "principal:alice"),
    ]
    assert await audit(gateway, approved["certificate_id"]) == [
        ("certificate.issued", "principal:admin")
    ]


async def test_ok_two_step_policy(gateway) -> None:
    a, ta = await principal(gateway, "a")
    b, tb = await principal(gateway, "b")
    c, tc = await principal(gateway, "c")
    await put_policy(
        gateway,
        {"steps": [{"approvers": [a, "b"], "required": 2}, {"approvers": [c]}]},
        status=201,
    )
    request_id, _ = await ask(gateway)
    assert (await decide(gateway, request_id, "approve", ta))["step"] == 0
    again = await decide(gateway, request_id, "approve", ta, status=409)
    assert again["error"]["code"] == "already_approved"
    early = await decide(gateway, request_id, "approve", tc, status=403)
    assert early["error"]["code"] == "not_an_approver"
    after_b = await decide(gateway, request_id, "approve", tb)
    assert (after_b["state"], after_b["step"]) == ("open", 1)
    # Step 0's approvers are not approvers of step 1.
    wrong = await decide(gateway, request_id, "approve", ta, status=403)
    assert wrong["error"]["code"] == "not_an_approver"
    done = await decide(gateway, request_id, "approve", tc)
    assert done["state"] == "issued"
    assert [(x["step"], x["principal_id"]) for x in done["approvals"]] == [(0, a), (0, b), (1, c)]


async def test_fail_self_approval(gateway) -> None:
    await put_policy(gateway, {"steps": [{"approvers": ["admin"]}]}, status=201)
    request_id, _ = await ask(gateway)
    for what, body in (("approve", {}), ("reject", {"comment": "no"})):
        err = await gateway.post(f"{REQUESTS}/{request_id}/{what}", body, status=403)
        assert err["error"]["code"] == "self_approval"
    assert (await gateway.get(f"{REQUESTS}/{request_id}"))["state"] == "open"


async def test_fail_approving_closed_request(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    await decide(gateway, request_id, "approve", token)
    before = await certificate_count(gateway)
    for what, body in (("approve", {}), ("reject", {"comment": "late"})):
        err = await decide(gateway, request_id, what, token, body, status=409)
        assert err["error"]["code"] == "request_closed"
    err = await gateway.post(f"{REQUESTS}/{request_id}/cancel", {}, status=409)
    assert err["error"]["code"] == "request_closed"
    assert await certificate_count(gateway) == before


async def test_ok_reject_with_comment(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    missing = await decide(gateway, request_id, "reject", token, {"comment": " "}, status=400)
    assert missing["error"]["code"] == "comment_required"
    rejected = await decide(gateway, request_id, "reject", token, {"comment": "wrong host"})
    assert (rejected["state"], rejected["comment"]) == ("rejected", "wrong host")
    assert rejected["approvals"][-1]["decision"] == "rejected"
    err = await decide(gateway, request_id, "approve", token, status=409)
    assert err["error"]["code"] == "request_closed"
    assert (await audit(gateway, request_id))[-1] == ("request.rejected", "principal:alice")
    assert (await gateway.get(f"{REQUESTS}?state=rejected"))["total"] == 1


async def test_ok_cancel_by_requester_only(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    err = await decide(gateway, request_id, "cancel", token, status=403)
    assert err["error"]["code"] == "not_requester"
    # No body at all is fine for cancel.
    resp = await gateway.client.post(f"{REQUESTS}/{request_id}/cancel", headers=gateway.auth)
    cancelled = await resp.json()
    assert resp.status == 200, cancelled
    assert cancelled["state"] == "cancelled"
    assert (await audit(gateway, request_id))[-1] == ("request.cancelled", "principal:admin")
    err = await decide(gateway, request_id, "approve", token, status=409)
    assert err["error"]["code"] == "request_closed"


async def test_ok_expiry(gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(
        gateway, {"steps": [{"approvers": ["alice"]}], "request_ttl_hours": 1}, status=201
    )
    request_id, csr = await ask(gateway)
    clock = gateway.services.clock
    later = clock.now() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    err = await decide(gateway, request_id, "approve", token, status=409)
    assert err["error"]["code"] == "request_expired"
    assert (await gateway.get(f"{REQUESTS}/{request_id}"))["state"] == "expired"
    assert (await gateway.get(f"{REQUESTS}?state=open"))["total"] == 0
    assert (await audit(gateway, request_id))[-1] == ("request.expired", "system")
    # The same CSR again opens a new request rather than reviving the expired one.
    again, _ = await ask(gateway, csr=csr)
    assert again != request_id


async def test_ok_listing_expires_due_requests(gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    await principal(gateway, "alice")
    await put_policy(
        gateway, {"steps": [{"approvers": ["alice"]}], "request_ttl_hours": 2}, status=201
    )
    ids = [(await ask(gateway, f"e{i}.localhost"))[0] for i in range(3)]
    clock = gateway.services.clock
    later = clock.now() + timedelta(hours=3)
    monkeypatch.setattr(clock, "now", lambda: later)
    listed = await gateway.get(f"{REQUESTS}?state=expired&limit=2")
    assert listed["total"] == 3 and len(listed["items"]) == 2
    assert {r["id"] for r in listed["items"]} < set(ids)


async def test_ok_bypass_identity_issues_directly(gateway) -> None:
    await principal(gateway, "alice")
    robot, robot_token = await principal(gateway, "robot", kind="machine")
    await put_policy(
        gateway, {"steps": [{"approvers": ["alice"]}], "bypass": ["robot"]}, status=201
    )
    csr, _ = make_csr("robot.localhost")
    issued = await gateway.post(gateway.issue_path(), {"csr": csr}, token=robot_token, status=201)
    assert issued["requester"] == "principal:robot"
    # Everybody else still waits.
    await ask(gateway)
    policy = await gateway.get(POLICY)
    assert policy["bypass"] == [robot]


async def test_ok_repeated_csr_joins_its_request(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, csr = await ask(gateway)
    again, _ = await ask(gateway, csr=csr)
    assert again == request_id
    assert (await gateway.get(REQUESTS))["total"] == 1
    approved = await decide(gateway, request_id, "approve", token)
    # An EST/SCEP-style client resending the same CSR now gets the issued certificate.
    fetched = await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)
    assert fetched["id"] == approved["certificate_id"]
    # Once revoked, the same CSR is a new request.
    await gateway.post(
        f"/api/v1/applications/demo/certificates/{fetched['id']}/revoke", {}, status=200
    )
    fresh, _ = await ask(gateway, csr=csr)
    assert fresh != request_id


async def test_ok_concurrent_last_step_approvals_issue_one_certificate(gateway) -> None:
    async def approve(request_id: str, token: str) -> tuple[int, Any]:
        resp = await gateway.client.post(
            f"{REQUESTS}/{request_id}/approve",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
        return resp.status, await resp.json()

    _, ta = await principal(gateway, "alice")
    _, tb = await principal(gateway, "bob")
    await put_policy(gateway, {"steps": [{"approvers": ["alice", "bob"]}]}, status=201)
    before = await certificate_count(gateway)
    rounds = 4
    for i in range(rounds):
        request_id, _ = await ask(gateway, f"race{i}.localhost")

        results = await asyncio.gather(approve(request_id, ta), approve(request_id, tb))
        statuses = sorted(status for status, _ in results)
        assert statuses in ([200, 200], [200, 409]), results
        for status, body in results:
            if status == 409:
                assert body["error"]["code"] == "request_closed"
        final = await gateway.get(f"{REQUESTS}/{request_id}")
        assert final["state"] == "issued"
        approvals = [a for a in final["approvals"] if a["decision"] == "approved"]
        assert len(approvals) == 1
    assert await certificate_count(gateway) == before + rounds


async def test_ok_issuance_failure_keeps_request_approved(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    profile = await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}")
    ca = f"/api/v1/cas/{profile['ca_id']}"
    await gateway.post(f"{ca}/disable", {}, status=200)
    approved = await decide(gateway, request_id, "approve", token)
    assert approved["state"] == "approved" and approved["certificate_id"] is None
    assert (await gateway.get(f"{REQUESTS}/{request_id}"))["state"] == "approved"
    await gateway.post(f"{ca}/enable", {}, status=200)
    fetched = await gateway.get(f"{REQUESTS}/{request_id}")
    assert fetched["state"] == "issued" and fetched["certificate_pem"]


async def test_ok_concurrent_issuance_retries_store_one_certificate(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    profile = await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}")
    ca = f"/api/v1/cas/{profile['ca_id']}"
    await gateway.post(f"{ca}/disable", {}, status=200)
    assert (await decide(gateway, request_id, "approve", token))["state"] == "approved"
    await gateway.post(f"{ca}/enable", {}, status=200)
    before = await certificate_count(gateway)
    # Every poll of an approved request tries to issue; the conditional commit keeps one.
    fetched = await asyncio.gather(*(gateway.get(f"{REQUESTS}/{request_id}") for _ in range(6)))
    assert {f["state"] for f in fetched} == {"issued"}
    assert len({f["certificate_id"] for f in fetched}) == 1
    assert await certificate_count(gateway) == before + 1


async def test_fail_policy_denies_at_issuance_rejects(gateway) -> None:
    _, token = await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway, "late.example.com")
    profile = await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}")
    path = f"/api/v1/policies/{profile['policy_id']}"
    rules = (await gateway.get(path))["rules"]
    rules["dns"]["allow"] = [d for d in rules["dns"]["allow"] if d != "*.example.com"]
    resp = await gateway.client.put(path, json={"rules": rules}, headers=gateway.auth)
    assert resp.status == 200, await resp.json()
    decided = await decide(gateway, request_id, "approve", token)
    assert decided["state"] == "rejected" and "late.example.com" in decided["comment"]
    assert (await audit(gateway, request_id))[-1] == ("request.rejected", "system")


async def test_ok_policy_crud_and_delete_cancels_open_requests(gateway) -> None:
    alice, _ = await principal(gateway, "alice")
    assert (await gateway.get(POLICY, status=404))["error"]["code"] == "not_found"
    created = await put_policy(
        gateway, {"steps": [{"approvers": ["alice"]}], "request_ttl_hours": 24}, status=201
    )
    assert created["steps"] == [{"approvers": [alice], "required": 1}]
    assert created["request_ttl_hours"] == 24
    replaced = await put_policy(gateway, {"steps": [{"approvers": [alice]}]}, status=200)
    assert replaced["id"] == created["id"] and replaced["request_ttl_hours"] == 72
    request_id, _ = await ask(gateway)
    resp = await gateway.client.delete(POLICY, headers=gateway.auth)
    assert (resp.status, await resp.json()) == (200, {"deleted": True, "cancelled_requests": 1})
    assert (await gateway.get(f"{REQUESTS}/{request_id}"))["state"] == "cancelled"
    resp = await gateway.client.delete(POLICY, headers=gateway.auth)
    assert resp.status == 404
    # Without a policy the profile issues directly again.
    await gateway.post(gateway.issue_path(), {"csr": make_csr("free.localhost")[0]}, status=201)
    actions = [a for a, _ in await audit(gateway, created["id"])]
    assert actions == [
        "approval_policy.created",
        "approval_policy.updated",
        "approval_policy.deleted",
    ]


async def test_fail_request_of_another_application(gateway) -> None:
    await principal(gateway, "alice")
    await put_policy(gateway, {"steps": [{"approvers": ["alice"]}]}, status=201)
    request_id, _ = await ask(gateway)
    await gateway.post("/api/v1/applications", {"slug": "other", "name": "Other"}, status=201)
    err = await gateway.get(f"/api/v1/applications/other/requests/{request_id}", status=404)
    assert err["error"]["code"] == "not_found"
    await gateway.get(f"{REQUESTS}/{uuid.uuid4()}", status=404)
    await gateway.get(f"{REQUESTS}?state=bogus", status=400)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_input"),
        ({"steps": []}, "invalid_input"),
        ({"steps": [{"approvers": []}]}, "invalid_input"),
        ({"steps": [{"approvers": ["alice"], "required": 2}]}, "invalid_input"),
        ({"steps": [{"approvers": ["alice"], "required": 0}]}, "invalid_input"),
        ({"steps": [{"approvers": ["alice"], "required": "1"}]}, "invalid_input"),
        ({"steps": [{"approvers": ["alice", "alice"]}]}, "invalid_input"),
        ({"steps": [{"approvers": ["nobody"]}]}, "unknown_principal"),
        ({"steps": [{"approvers": [str(uuid.UUID(int=7))]}]}, "unknown_principal"),
        ({"steps": [{"approvers": ["alice"]}], "extra": 1}, "unknown_field"),
        ({"steps": [{"approvers": ["alice"], "who": 1}]}, "unknown_field"),
        ({"steps": [{"approvers": ["alice"]}], "bypass": ["alice"]}, "invalid_input"),
        ({"steps": [{"approvers": ["alice"]}], "request_ttl_hours": 0}, "invalid_input"),
        ({"steps": [{"approvers": ["alice"]}], "request_ttl_hours": 1.5}, "invalid_input"),
        ({"steps": ["alice"]}, "invalid_input"),
    ],
    ids=[
        "fail/no-steps",
        "fail/empty-steps",
        "fail/no-approvers",
        "fail/required-above-approvers",
        "fail/required-zero",
        "fail/required-not-int",
        "fail/approver-twice",
        "fail/unknown-approver-name",
        "fail/unknown-approver-id",
        "fail/unknown-key",
        "fail/unknown-step-key",
        "fail/bypass-a-person",
        "fail/ttl-zero",
        "fail/ttl-float",
        "fail/step-not-object",
    ],
)
async def test_fail_put_policy_validation(gateway, body: dict[str, Any], code: str) -> None:
    await principal(gateway, "alice")
    err = await put_policy(gateway, body, status=400)
    assert err["error"]["code"] == code
    await gateway.get(POLICY, status=404)  # nothing half-written


async def test_fail_server_keygen_under_approval_needs_csr(gateway) -> None:
    await put_policy(gateway, {"steps": [{"approvers": ["admin"]}]}, status=201)
    before = await certificate_count(gateway)
    err = await gateway.post(gateway.issue_path(), {"sans": ["kg.localhost"]}, status=400)
    assert err["error"]["code"] == "keygen_needs_csr"
    listing = await gateway.get(REQUESTS)
    assert listing["total"] == 0 and await certificate_count(gateway) == before
