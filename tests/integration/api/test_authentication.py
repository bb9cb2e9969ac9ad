"""REST authentication: missing, malformed, unknown, revoked and expired bearer tokens,
and a member without a role refused."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "header, code",
    [
        (None, "unauthorized"),
        ("Bearer nope", "unauthorized"),
        ("Basic abc", "unauthorized"),
        ("Bearer cgt_00000000000000000000000000000000_x", "unauthorized"),
    ],
    ids=["fail/none", "fail/malformed", "fail/scheme", "fail/unknown"],
)
async def test_fail_auth(gateway, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await gateway.client.get("/api/v1/cas", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == code
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_fail_revoked_token_and_non_admin(gateway) -> None:
    user = await gateway.post(
        "/api/v1/principals", {"name": "bob", "product_role": "member"}, status=201
    )
    token = await gateway.post(f"/api/v1/principals/{user['id']}/tokens", {"name": "t"}, status=201)
    denied = await gateway.get("/api/v1/cas", token=token["token"], status=403)
    assert denied["error"]["code"] == "forbidden"
    await gateway.post(f"/api/v1/tokens/{token['id']}/revoke", {}, status=200)
    revoked = await gateway.get("/api/v1/cas", token=token["token"], status=401)
    assert revoked["error"]["code"] == "token_revoked"
    expired = await gateway.post(
        f"/api/v1/principals/{user['id']}/tokens",
        {"expires_at": "2001-01-01T00:00:00Z"},
        status=400,
    )
    assert expired["error"]["code"] == "invalid_input"
