"""What a token and an application Admin can reach: a token minted through /me/tokens is
revoked with the token that minted it, and an application Admin cannot look principals
up outside its application."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Gateway
from tests.integration.api.test_members import MEMBERS, user


async def test_fail_minted_token_dies_with_its_parent(gateway: Gateway) -> None:
    alice, parent = await user(gateway, "alice")
    child = await gateway.post("/api/v1/me/tokens", {"name": "child"}, token=parent, status=201)
    grandchild = await gateway.post(
        "/api/v1/me/tokens", {"name": "grandchild"}, token=child["token"], status=201
    )
    parent_id = (await gateway.get("/api/v1/me", token=parent))["token"]["id"]
    # An administrator revokes the leaked parent: what it minted dies with it.
    await gateway.post(f"/api/v1/tokens/{parent_id}/revoke", {}, status=200)
    for token in (parent, child["token"], grandchild["token"]):
        error = await gateway.get("/api/v1/me", token=token, status=401)
        assert error["error"]["code"] == "token_revoked"
    listed = await gateway.get(f"/api/v1/principals/{alice['id']}/tokens")
    assert {t["name"]: t["status"] for t in listed["items"]} == {
        "api": "revoked",
        "child": "revoked",
        "grandchild": "revoked",
    }


async def test_ok_revoking_a_minted_token_spares_its_parent(gateway: Gateway) -> None:
    _, parent = await user(gateway, "alice")
    child = await gateway.post("/api/v1/me/tokens", {"name": "child"}, token=parent, status=201)
    await gateway.post(f"/api/v1/me/tokens/{child['id']}/revoke", {}, token=parent, status=200)
    await gateway.get("/api/v1/me", token=parent, status=200)


async def test_ok_tokens_an_administrator_mints_are_independent(gateway: Gateway) -> None:
    alice, first = await user(gateway, "alice")
    second = await gateway.post(f"/api/v1/principals/{alice['id']}/tokens", {}, status=201)
    first_id = (await gateway.get("/api/v1/me", token=first))["token"]["id"]
    await gateway.post(f"/api/v1/tokens/{first_id}/revoke", {}, status=200)
    await gateway.get("/api/v1/me", token=second["token"], status=200)


@pytest.fixture
async def app_admin(gateway: Gateway) -> str:
    """The token of `boss`, Admin of demo and nothing more."""
    _, token = await user(gateway, "boss")
    await gateway.post(MEMBERS, {"principal": "boss", "role": "admin"}, status=201)
    return token


@pytest.mark.parametrize("ref", ["root-admin", "alice"], ids=["product-admin", "product-member"])
async def test_fail_app_admin_cannot_look_up_principals_by_name(
    gateway: Gateway, app_admin: str, ref: str
) -> None:
    await user(gateway, "root-admin", role="admin")
    await user(gateway, "alice")
    error = await gateway.post(
        MEMBERS, {"principal": ref, "role": "auditor"}, token=app_admin, status=404
    )
    assert error["error"]["code"] == "not_found"
    # Answered exactly as for a name nobody has.
    nobody = await gateway.post(
        MEMBERS, {"principal": "nobody", "role": "auditor"}, token=app_admin, status=404
    )
    assert nobody["error"]["message"] == error["error"]["message"].replace(ref, "nobody")


async def test_fail_app_admin_cannot_add_a_product_admin_by_id(
    gateway: Gateway, app_admin: str
) -> None:
    root, _ = await user(gateway, "root-admin", role="admin")
    await gateway.post(
        MEMBERS, {"principal": root["id"], "role": "auditor"}, token=app_admin, status=404
    )


async def test_ok_app_admin_adds_a_member_by_id(gateway: Gateway, app_admin: str) -> None:
    alice, _ = await user(gateway, "alice")
    added = await gateway.post(
        MEMBERS, {"principal": alice["id"], "role": "auditor"}, token=app_admin, status=201
    )
    assert added["principal"] == "alice"


async def test_ok_product_admin_still_adds_by_name(gateway: Gateway) -> None:
    await user(gateway, "alice")
    await gateway.post(MEMBERS, {"principal": "alice", "role": "auditor"}, status=201)
