"""A renewed certificate links both ways: the new one's `renewed_from`, the old one's
`renewed_by` (the newest renewal), in get, list and the inventory. The old one is not
revoked. On SQLite and PostgreSQL."""

from __future__ import annotations

from tests.integration.api.conftest import Gateway

CERTS = "/api/v1/applications/demo/certificates"


async def test_ok_renewed_by_names_the_newest_renewal(gateway: Gateway) -> None:
    old = await gateway.post(gateway.issue_path(), {"sans": ["links.test"]}, status=201)
    assert old["renewed_by"] is None
    first = await gateway.post(f"{CERTS}/{old['id']}/renew", {}, status=201)
    assert first["renewed_from"] == old["id"] and first["renewed_by"] is None
    got = await gateway.get(f"{CERTS}/{old['id']}")
    assert got["renewed_by"] == first["id"]
    assert got["status"] == "active"  # renewal does not revoke

    second = await gateway.post(f"{CERTS}/{old['id']}/renew", {}, status=201)
    got = await gateway.get(f"{CERTS}/{old['id']}")
    assert got["renewed_by"] == second["id"]

    listed = {c["id"]: c for c in (await gateway.get(f"{CERTS}?q=links.test"))["items"]}
    assert listed[old["id"]]["renewed_by"] == second["id"]
    assert listed[first["id"]]["renewed_by"] is None
    inventory = {
        c["id"]: c for c in (await gateway.get("/api/v1/certificates?q=links.test"))["items"]
    }
    assert inventory[old["id"]]["renewed_by"] == second["id"]
