"""The inventory across projects (issue 12, item 6): `GET /api/v1/certificates` lists every
certificate of every project for a Product Admin, legacy issuance (no application)
included, with the project/profile/application/status/expiring_before filters."""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from store import tables
from tests.helpers.databases import Seed
from tests.integration.api.conftest import Gateway
from tests.integration.api.legacy_helpers import legacy_est_enroll, proxied_gateway

INVENTORY = "/api/v1/certificates"


@pytest.fixture
async def gateway(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> Gateway:
    return await proxied_gateway(aiohttp_client, tmp_path / "home", database_url, seed_gateway)


def url(**query: str) -> str:
    return INVENTORY + ("?" + urllib.parse.urlencode(query) if query else "")


async def ids(gw: Gateway, **query: str) -> set[str]:
    data = await gw.get(url(**query))
    assert data["total"] == len(data["items"]), data  # every test world fits one page
    return {item["id"] for item in data["items"]}


async def issue(gw: Gateway, cn: str) -> dict[str, Any]:
    return await gw.post(gw.issue_path(), {"subject": {"CN": cn}, "sans": [cn]}, status=201)


async def world(gw: Gateway) -> dict[str, Any]:
    """Two demo certificates (one revoked, one expired by a store edit) and one issued
    through the legacy profile's EST endpoint."""
    active = await issue(gw, "active.test")
    revoked = await issue(gw, "revoked.test")
    path = f"/api/v1/applications/demo/certificates/{revoked['id']}/revoke"
    await gw.post(path, {"reason": "superseded"}, status=200)
    expired = await issue(gw, "expired.test")
    async with gw.services.db.transaction() as tx:
        await tx.session.execute(
            update(tables.certificates)
            .where(tables.certificates.c.id == uuid.UUID(expired["id"]))
            .values(not_after=datetime.now(UTC) - timedelta(days=1))
        )
    status, cert = await legacy_est_enroll(gw, "legacy.example.com")
    assert status == 200 and cert is not None
    legacy_serial = format(cert.serial_number, "x")
    data = await gw.get(url())
    (legacy,) = [i for i in data["items"] if i["serial"] == legacy_serial]
    return {"active": active, "revoked": revoked, "expired": expired, "legacy": legacy}


async def test_ok_lists_every_certificate_legacy_included(gateway: Gateway) -> None:
    w = await world(gateway)
    boot = gateway.bootstrap
    project_id = (await gateway.get("/api/v1/projects"))["items"][0]["id"]
    data = await gateway.get(url())
    by_id = {i["id"]: i for i in data["items"]}
    assert set(by_id) == {w[k]["id"] for k in ("active", "revoked", "expired", "legacy")}
    legacy = by_id[w["legacy"]["id"]]
    assert legacy["application"] is None and legacy["application_id"] is None
    assert legacy["profile_id"] == boot["legacy_profile_id"]
    assert legacy["project_id"] == project_id
    assert legacy["method"] == "est"
    demo = by_id[w["active"]["id"]]
    assert demo["application"] == "demo" and demo["project_id"] == project_id
    assert demo["profile_id"] == boot["profile_id"]
    # Newest first, paginated like an application's list.
    page = await gateway.get(url(limit="1", offset="1"))
    assert page["total"] == 4 and page["limit"] == 1 and page["offset"] == 1
    assert [i["id"] for i in page["items"]] == [i["id"] for i in data["items"]][1:2]


async def test_ok_each_filter(gateway: Gateway) -> None:
    w = await world(gateway)
    boot = gateway.bootstrap
    every = {w[k]["id"] for k in ("active", "revoked", "expired", "legacy")}
    demo = every - {w["legacy"]["id"]}
    project_id = (await gateway.get("/api/v1/projects"))["items"][0]["id"]
    app_id = (await gateway.get("/api/v1/applications/demo"))["id"]

    assert await ids(gateway, project_id=project_id) == every
    assert await ids(gateway, profile_id=boot["legacy_profile_id"]) == {w["legacy"]["id"]}
    assert await ids(gateway, profile_id=boot["profile_id"]) == demo
    assert await ids(gateway, application="demo") == demo
    assert await ids(gateway, application=app_id) == demo
    assert await ids(gateway, status="active") == {w["active"]["id"], w["legacy"]["id"]}
    assert await ids(gateway, status="revoked") == {w["revoked"]["id"]}
    assert await ids(gateway, status="expired") == {w["expired"]["id"]}
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await ids(gateway, expiring_before=soon) == {w["expired"]["id"]}
    later = (datetime.now(UTC) + timedelta(days=36_000)).isoformat()
    assert await ids(gateway, expiring_before=later) == every
    assert await ids(gateway, application="demo", status="active") == {w["active"]["id"]}
    assert await ids(gateway, q="legacy.example") == {w["legacy"]["id"]}

    # Another project, now the active one: it has none, and the old one's stay listed.
    other = await gateway.post("/api/v1/projects", {"name": "other"}, status=201)
    assert await ids(gateway, project_id=other["id"]) == set()
    await gateway.post(f"/api/v1/projects/{other['id']}/activate", {}, status=200)
    assert await ids(gateway) == every
    assert await ids(gateway, project_id=project_id) == every
    # A slug names an application of the active project; the old one's by its id.
    bad = await gateway.get(url(application="demo"), status=400)
    assert bad["error"]["code"] == "invalid_input" and "active project" in bad["error"]["message"]
    assert await ids(gateway, application=app_id) == demo


@pytest.mark.parametrize(
    "query, field",
    [
        pytest.param({"status": "valid"}, "status", id="fail/unknown-status"),
        pytest.param({"project_id": "nope"}, "project_id", id="fail/project-not-uuid"),
        pytest.param({"profile_id": "nope"}, "profile_id", id="fail/profile-not-uuid"),
        pytest.param({"expiring_before": "2030-01-01"}, "expiring_before", id="fail/no-time"),
        pytest.param(
            {"expiring_before": "2030-01-01T00:00:00"}, "expiring_before", id="fail/naive-time"
        ),
        pytest.param({"limit": "0"}, "limit", id="fail/limit-zero"),
    ],
)
async def test_fail_bad_query(gateway: Gateway, query: dict[str, str], field: str) -> None:
    data = await gateway.get(url(**query), status=400)
    assert data["error"]["code"] == "invalid_input"
    assert [v["field"] for v in data["error"]["violations"]] == [field]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"application": "no-such-app"}, id="fail/unknown-application-slug"),
        pytest.param(
            {"application": "00000000-0000-4000-8000-000000000000"},
            id="fail/unknown-application-id",
        ),
        pytest.param({"application": "Not A Slug"}, id="fail/not-a-slug"),
        pytest.param(
            {"project_id": "00000000-0000-4000-8000-000000000000"}, id="fail/unknown-project"
        ),
        pytest.param(
            {"profile_id": "00000000-0000-4000-8000-000000000000"}, id="fail/unknown-profile"
        ),
    ],
)
async def test_fail_unknown_reference(gateway: Gateway, query: dict[str, str]) -> None:
    data = await gateway.get(url(**query), status=400)
    assert data["error"]["code"] == "invalid_input"
    assert "unknown" in data["error"]["message"]


async def test_fail_not_product_admin(gateway: Gateway) -> None:
    """A Product Member, even an Admin of every application, does not see the inventory."""
    member = await gateway.post(
        "/api/v1/principals", {"name": "member", "product_role": "member"}, status=201
    )
    await gateway.post(
        "/api/v1/applications/demo/members",
        {"principal": member["id"], "role": "admin"},
        status=201,
    )
    created = await gateway.post(f"/api/v1/principals/{member['id']}/tokens", {}, status=201)
    token = created["token"]
    data = await gateway.get(INVENTORY, token=token, status=403)
    assert data["error"]["code"] == "forbidden"
    # Its own application's list stays open to it.
    await gateway.get("/api/v1/applications/demo/certificates", token=token)
    resp = await gateway.client.get(INVENTORY)
    assert resp.status == 401
