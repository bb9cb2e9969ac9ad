"""Whom an approval policy may name (issue 15, finding 9): approvers must be able to reach
the request (the application's members or Product Admins), and an application Admin
cannot look principals up by name outside its application."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.conftest import Gateway
from tests.integration.api.test_members import MEMBERS, user

POLICY = "/api/v1/applications/demo/profiles/tls-server/approval-policy"


async def put(gateway: Gateway, approvers: list[str], token: str | None, status: int) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else gateway.auth
    resp = await gateway.client.put(
        POLICY, json={"steps": [{"approvers": approvers}]}, headers=headers
    )
    data = await resp.json()
    assert resp.status == status, data
    return data


@pytest.fixture
async def app_admin(gateway: Gateway) -> str:
    _, token = await user(gateway, "boss")
    await gateway.post(MEMBERS, {"principal": "boss", "role": "admin"}, status=201)
    return token


@pytest.mark.parametrize("by", ["product_admin", "app_admin"])
async def test_fail_non_member_approver_refused(gateway: Gateway, app_admin: str, by: str) -> None:
    # A Product Member outside the application could never reach the request to decide.
    outsider, _ = await user(gateway, "outsider")
    token = None if by == "product_admin" else app_admin
    for ref in ("outsider", outsider["id"]):
        error = await put(gateway, [ref], token, 400)
        assert error["error"]["code"] == "unknown_principal"


async def test_fail_app_admin_cannot_find_product_admin_by_name(
    gateway: Gateway, app_admin: str
) -> None:
    await user(gateway, "root-admin", role="admin")
    error = await put(gateway, ["root-admin"], app_admin, 400)
    nobody = await put(gateway, ["nobody"], app_admin, 400)
    assert error["error"]["message"].replace("root-admin", "nobody") == nobody["error"]["message"]


async def test_ok_members_and_product_admins_by_id(gateway: Gateway, app_admin: str) -> None:
    alice, _ = await user(gateway, "alice")
    root, _ = await user(gateway, "root-admin", role="admin")
    await gateway.post(MEMBERS, {"principal": alice["id"], "role": "operator"}, status=201)
    await put(gateway, ["alice", root["id"]], app_admin, 201)


async def test_ok_product_admin_names_product_admin_by_name(gateway: Gateway) -> None:
    await user(gateway, "root-admin", role="admin")
    await put(gateway, ["root-admin"], None, 201)
