"""Principals, tokens, application members and what each caller can see (REST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.api.conftest import Gateway

MEMBERS = "/api/v1/applications/demo/members"


async def call(
    gw: Gateway,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    status: int,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else gw.auth
    resp = await gw.client.request(method, path, json=body, headers=headers)
    data = None if resp.status == 204 else await resp.json()
    assert resp.status == status, data
    return data


async def user(gw: Gateway, name: str, role: str | None = "member") -> tuple[dict[str, Any], str]:
    """A principal with a product role, and a token for it."""
    principal = await gw.post(
        "/api/v1/principals", {"name": name, "product_role": role}, status=201
    )
    token = await gw.post(f"/api/v1/principals/{principal['id']}/tokens", {}, status=201)
    return principal, token["token"]


async def second_app(gw: Gateway) -> None:
    await gw.post("/api/v1/applications", {"slug": "payments"}, status=201)


async def audit(gw: Gateway, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return (await gw.get(f"/api/v1/audit?{qs}"))["items"]  # type: ignore[no-any-return]


# --- members ------------------------------------------------------------------------------


async def test_ok_members_crud_with_audit(gateway: Gateway) -> None:
    alice, _ = await user(gateway, "alice")
    # By name, then the member is addressed by id.
    added = await gateway.post(MEMBERS, {"principal": "alice", "role": "auditor"}, status=201)
    assert added["principal_id"] == alice["id"]
    assert (added["principal"], added["role"], added["application"]) == ("alice", "auditor", "demo")
    listed = (await gateway.get(MEMBERS))["items"]
    assert [(m["principal"], m["role"]) for m in listed] == [("alice", "auditor")]

    changed = await call(
        gateway, "PATCH", f"{MEMBERS}/{alice['id']}", {"role": "operator"}, status=200
    )
    assert changed["role"] == "operator"
    await call(gateway, "DELETE", f"{MEMBERS}/{alice['id']}", status=204)
    assert (await gateway.get(MEMBERS))["items"] == []

    events = await audit(gateway, target_id=f"{added['application_id']}:{alice['id']}")
    assert [(e["action"], e["details"]["before"], e["details"]["after"]) for e in events] == [
        ("member.removed", {"role": "operator"}, None),
        ("member.role_changed", {"role": "auditor"}, {"role": "operator"}),
        ("member.added", None, {"role": "auditor"}),
    ]
    assert {e["actor"] for e in events} == {"principal:admin"}
    assert all(e["application_id"] == added["application_id"] for e in events)
    assert all(e["source_ip"] for e in events)


async def test_ok_add_by_id(gateway: Gateway) -> None:
    bot = await gateway.post("/api/v1/principals", {"name": "bot", "kind": "machine"}, status=201)
    added = await gateway.post(MEMBERS, {"principal": bot["id"], "role": "operator"}, status=201)
    assert (added["principal"], added["kind"], added["product_role"]) == ("bot", "machine", None)


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"principal": "alice", "role": "owner"}, 400, "invalid_role"),
        ({"principal": "alice", "role": "Admin"}, 400, "invalid_role"),
        ({"principal": "alice"}, 400, "invalid_role"),
        ({"principal": "alice", "role": 3}, 400, "invalid_role"),
        ({"principal": "nobody", "role": "auditor"}, 404, "not_found"),
        ({"principal": "00000000-0000-0000-0000-000000000000", "role": "admin"}, 404, "not_found"),
        ({"role": "auditor"}, 400, "invalid_input"),
        ({"principal": "alice", "role": "admin"}, 409, "already_member"),
    ],
    ids=[
        "fail/unknown-role",
        "fail/role-case",
        "fail/no-role",
        "fail/role-type",
        "fail/unknown-name",
        "fail/unknown-id",
        "fail/no-principal",
        "fail/twice",
    ],
)
async def test_fail_add_member(
    gateway: Gateway, body: dict[str, Any], status: int, code: str
) -> None:
    await user(gateway, "alice")
    await gateway.post(MEMBERS, {"principal": "alice", "role": "auditor"}, status=201)
    before_members = await gateway.get(MEMBERS)
    before_audit = (await gateway.get("/api/v1/audit?limit=1"))["total"]
    error = (await gateway.post(MEMBERS, body, status=status))["error"]
    assert error["code"] == code
    # Nothing half-written: same members, no audit event.
    assert await gateway.get(MEMBERS) == before_members
    assert (await gateway.get("/api/v1/audit?limit=1"))["total"] == before_audit


async def test_fail_change_or_remove_non_member(gateway: Gateway) -> None:
    alice, _ = await user(gateway, "alice")
    path = f"{MEMBERS}/{alice['id']}"
    error = await call(gateway, "PATCH", path, {"role": "admin"}, status=404)
    assert error["error"]["code"] == "not_found"
    await call(gateway, "DELETE", path, status=404)
    await gateway.post(MEMBERS, {"principal": "alice", "role": "auditor"}, status=201)
    error = await call(gateway, "PATCH", path, {"role": "root"}, status=400)
    assert error["error"]["code"] == "invalid_role"
    await call(gateway, "PATCH", f"{MEMBERS}/not-a-uuid", {"role": "admin"}, status=404)


async def test_ok_app_admin_manages_members_of_its_own_app_only(gateway: Gateway) -> None:
    _, boss = await user(gateway, "boss")
    await gateway.post(MEMBERS, {"principal": "boss", "role": "admin"}, status=201)
    alice, _ = await user(gateway, "alice")
    await second_app(gateway)
    # By id: an application Admin cannot look principals up by name (test_token_scope.py).
    await gateway.post(
        MEMBERS, {"principal": alice["id"], "role": "auditor"}, token=boss, status=201
    )
    other = "/api/v1/applications/payments/members"
    denied = await gateway.post(other, {"principal": "alice", "role": "auditor"}, token=boss)
    assert denied["error"]["code"] == "forbidden"


# --- who sees what ------------------------------------------------------------------------


async def test_ok_application_list_is_filtered(gateway: Gateway) -> None:
    await second_app(gateway)
    _, alice = await user(gateway, "alice")
    _, nobody = await user(gateway, "nobody")
    _, outsider = await user(gateway, "outsider", role=None)
    await gateway.post(MEMBERS, {"principal": "alice", "role": "operator"}, status=201)
    await gateway.post(MEMBERS, {"principal": "outsider", "role": "admin"}, status=201)

    everything = (await gateway.get("/api/v1/applications"))["items"]
    assert sorted(a["slug"] for a in everything) == ["demo", "payments"]
    mine = (await gateway.get("/api/v1/applications", token=alice))["items"]
    assert [(a["slug"], a["role"]) for a in mine] == [("demo", "operator")]
    # A Product Member without any app role, and an app member without Product Member:
    # neither sees anything.
    assert (await gateway.get("/api/v1/applications", token=nobody))["items"] == []
    assert (await gateway.get("/api/v1/applications", token=outsider))["items"] == []
    for token in (nobody, outsider):
        error = await gateway.get("/api/v1/applications/demo", token=token, status=403)
        assert error["error"]["code"] == "forbidden"
        await gateway.get("/api/v1/applications/demo/certificates", token=token, status=403)


async def test_ok_unknown_application_is_403_to_members_404_to_admins(gateway: Gateway) -> None:
    _, alice = await user(gateway, "alice")
    await gateway.post(MEMBERS, {"principal": "alice", "role": "admin"}, status=201)
    await second_app(gateway)
    # Existing-but-not-mine and missing look the same to a non-admin...
    missing = await gateway.get("/api/v1/applications/ghost", token=alice, status=403)
    foreign = await gateway.get("/api/v1/applications/payments", token=alice, status=403)
    assert missing["error"]["message"].replace("ghost", "X") == foreign["error"]["message"].replace(
        "payments", "X"
    )
    # ...while a Product Admin, who may see every application, learns it does not exist.
    await gateway.get("/api/v1/applications/ghost", status=404)
    await gateway.get("/api/v1/applications/ghost/members", status=404)


async def test_ok_roles_are_ordered(gateway: Gateway) -> None:
    _, auditor = await user(gateway, "aud")
    await gateway.post(MEMBERS, {"principal": "aud", "role": "auditor"}, status=201)
    path = gateway.issue_path()
    denied = await gateway.post(path, {"sans": ["a.test"]}, token=auditor, status=403)
    assert "operator" in denied["error"]["message"]
    principal_id = (await gateway.get(MEMBERS))["items"][0]["principal_id"]
    await call(gateway, "PATCH", f"{MEMBERS}/{principal_id}", {"role": "operator"}, status=200)
    await gateway.post(path, {"sans": ["a.test"]}, token=auditor, status=201)
    # Role changes apply to the next request: nothing about roles is cached.
    await call(gateway, "DELETE", f"{MEMBERS}/{principal_id}", status=204)
    await gateway.post(path, {"sans": ["a.test"]}, token=auditor, status=403)


# --- principals ---------------------------------------------------------------------------


async def test_ok_deleted_principal_token_is_401(gateway: Gateway) -> None:
    alice, token = await user(gateway, "alice")
    await gateway.post(MEMBERS, {"principal": "alice", "role": "operator"}, status=201)
    await gateway.get("/api/v1/me", token=token)
    await call(gateway, "DELETE", f"/api/v1/principals/{alice['id']}", status=204)

    error = await gateway.get("/api/v1/me", token=token, status=401)
    assert error["error"]["code"] == "unauthorized"
    await gateway.get(f"/api/v1/principals/{alice['id']}", status=404)
    await call(gateway, "DELETE", f"/api/v1/principals/{alice['id']}", status=404)
    assert (await gateway.get(MEMBERS))["items"] == []
    # The demo application's audit shows the membership going away, with the reason.
    removed = (await gateway.get("/api/v1/applications/demo/audit?action=member.removed"))["items"]
    assert [e["details"]["reason"] for e in removed] == ["principal deleted"]
    deleted = await audit(gateway, action="principal.deleted")
    assert deleted[0]["details"]["tokens_deleted"] == 1
    assert deleted[0]["details"]["before"]["name"] == "alice"
    # The name is free again.
    await user(gateway, "alice")


async def test_ok_disable_and_change_product_role(gateway: Gateway) -> None:
    alice, token = await user(gateway, "alice")
    path = f"/api/v1/principals/{alice['id']}"
    updated = await call(gateway, "PATCH", path, {"disabled": True}, status=200)
    assert updated["disabled"] is True
    error = await gateway.get("/api/v1/me", token=token, status=401)
    assert error["error"]["code"] == "principal_disabled"
    await call(gateway, "PATCH", path, {"disabled": False, "product_role": "admin"}, status=200)
    await gateway.get("/api/v1/cas", token=token)
    await call(gateway, "PATCH", path, {"product_role": None}, status=200)
    await gateway.get("/api/v1/cas", token=token, status=403)
    events = await audit(gateway, action="principal.updated", target_id=alice["id"])
    roles = [
        (e["details"]["before"]["product_role"], e["details"]["after"]["product_role"])
        for e in events
    ]
    assert roles == [("admin", None), ("member", "admin"), ("member", "member")]

    got = await gateway.get(path)
    assert got["product_role"] is None and got["memberships"] == []


@pytest.mark.parametrize(
    "body, code",
    [
        ({"product_role": "owner"}, "invalid_role"),
        ({"disabled": "yes"}, "invalid_input"),
        ({"name": "renamed"}, "invalid_input"),
        ({}, "invalid_input"),
    ],
    ids=["fail/role", "fail/disabled-type", "fail/immutable", "fail/empty"],
)
async def test_fail_update_principal(gateway: Gateway, body: dict[str, Any], code: str) -> None:
    alice, _ = await user(gateway, "alice")
    error = await call(gateway, "PATCH", f"/api/v1/principals/{alice['id']}", body, status=400)
    assert error["error"]["code"] == code


@pytest.mark.parametrize(
    "method, body",
    [("PATCH", {"product_role": "member"}), ("PATCH", {"disabled": True}), ("DELETE", None)],
    ids=["fail/demote", "fail/disable", "fail/delete"],
)
async def test_fail_last_product_admin_stays(gateway: Gateway, method: str, body: Any) -> None:
    admin_id = (await gateway.get("/api/v1/me"))["principal"]["id"]
    error = await call(gateway, method, f"/api/v1/principals/{admin_id}", body, status=409)
    assert error["error"]["code"] == "last_admin"
    await gateway.get("/api/v1/cas")
    # With a second admin, the first may go.
    await user(gateway, "second", role="admin")
    done = 204 if method == "DELETE" else 200
    await call(gateway, method, f"/api/v1/principals/{admin_id}", body, status=done)


# --- tokens -------------------------------------------------------------------------------


async def test_ok_tokens_listed_without_secrets(gateway: Gateway) -> None:
    alice, token = await user(gateway, "alice")
    path = f"/api/v1/principals/{alice['id']}/tokens"
    second = await gateway.post(path, {"name": "ci"}, status=201)
    await gateway.post(f"/api/v1/tokens/{second['id']}/revoke", {}, status=200)
    again = await gateway.post(f"/api/v1/tokens/{second['id']}/revoke", {}, status=409)
    assert again["error"]["code"] == "already_revoked"
    items = (await gateway.get(path))["items"]
    assert [(t["name"], t["status"]) for t in items] == [("api", "active"), ("ci", "revoked")]
    secret = token.split("_", 2)[2]  # cgt_<id>_<secret>; the secret may hold "_"
    for item in items:
        assert set(item) == {
            "id", "principal_id", "name", "status", "created_at", "expires_at", "revoked_at"
        }  # fmt: skip
        assert secret not in str(item)
    await gateway.get("/api/v1/principals/00000000-0000-0000-0000-000000000000/tokens", status=404)


async def test_ok_me_and_own_tokens(gateway: Gateway) -> None:
    alice, token = await user(gateway, "alice")
    await gateway.post(MEMBERS, {"principal": "alice", "role": "auditor"}, status=201)
    me = await gateway.get("/api/v1/me", token=token)
    assert me["principal"]["name"] == "alice"
    assert [(m["application"], m["role"]) for m in me["memberships"]] == [("demo", "auditor")]
    assert me["token"]["status"] == "active"

    made = await gateway.post("/api/v1/me/tokens", {"name": "laptop"}, token=token, status=201)
    assert made["principal_id"] == alice["id"]
    assert (await gateway.get("/api/v1/me", token=made["token"]))["principal"]["id"] == alice["id"]
    names = [t["name"] for t in (await gateway.get("/api/v1/me/tokens", token=token))["items"]]
    assert names == ["api", "laptop"]
    await gateway.post(f"/api/v1/me/tokens/{made['id']}/revoke", {}, token=token, status=200)
    error = await gateway.get("/api/v1/me", token=made["token"], status=401)
    assert error["error"]["code"] == "token_revoked"
    # Someone else's token is "not found", never revocable.
    admin_token_id = (await gateway.get("/api/v1/me"))["token"]["id"]
    await gateway.post(f"/api/v1/me/tokens/{admin_token_id}/revoke", {}, token=token, status=404)
    await gateway.get("/api/v1/me")


async def test_fail_own_token_cannot_outlive_the_caller(gateway: Gateway) -> None:
    alice, _ = await user(gateway, "alice")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    short = await gateway.post(
        f"/api/v1/principals/{alice['id']}/tokens", {"expires_at": soon}, status=201
    )
    error = await gateway.post(
        "/api/v1/me/tokens", {"expires_at": later}, token=short["token"], status=400
    )
    assert error["error"]["code"] == "invalid_input"
    made = await gateway.post("/api/v1/me/tokens", {}, token=short["token"], status=201)
    assert made["expires_at"] == short["expires_at"]
