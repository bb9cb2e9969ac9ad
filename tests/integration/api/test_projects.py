"""Projects through the REST API (issue 12, item 1): the list, a new (legacy) project, the
active-project switch as every front-end sees it, and an organization with no active project.

After a switch, the old project's Applications are no longer served anywhere (REST and
the application-scoped ACME/EST/SCEP URLs answer 404, as for an application that does
not exist), while its legacy profile endpoints keep issuing. With no active project at
all, the REST API answers 409 `no_active_project` (a state to fix, not a missing
resource) and says how to designate one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gateway.core.model import ProjectStatus
from store import tables
from tests.helpers.databases import Seed
from tests.integration.api.conftest import Gateway
from tests.integration.api.legacy_helpers import legacy_est_enroll, proxied_gateway

APP_ACME = "/applications/demo/profiles/tls-server/acme/directory"
APP_EST = "/.well-known/est/applications/demo/profiles/tls-server/cacerts"
LABEL_EST = "/.well-known/est/demo.tls-server/cacerts"
APP_SCEP = "/applications/demo/profiles/tls-server/scep?operation=GetCACaps"


@pytest.fixture
async def gateway(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> Gateway:
    return await proxied_gateway(aiohttp_client, tmp_path / "home", database_url, seed_gateway)


def legacy_urls(boot: dict[str, Any]) -> dict[str, str]:
    pid = boot["legacy_profile_id"]
    return {
        "acme": f"/profiles/{pid}/acme/directory",
        "est": f"/.well-known/est/{pid}/cacerts",
        "scep": f"/profiles/{pid}/scep?operation=GetCACaps",
    }


async def status_of(gw: Gateway, path: str) -> int:
    resp = await gw.client.get(path)
    await resp.read()
    return resp.status


async def test_ok_list_shows_status_and_exported_at(gateway: Gateway) -> None:
    data = await gateway.get("/api/v1/projects")
    (only,) = data["items"]
    assert only["status"] == "active"
    assert only["exported_at"] is None
    assert set(only) >= {"id", "name", "status", "exported_at", "created_at"}


async def test_ok_create_is_legacy_by_default(gateway: Gateway) -> None:
    created = await gateway.post("/api/v1/projects", {"name": "old-pki"}, status=201)
    assert created["status"] == "legacy" and created["exported_at"] is None
    items = (await gateway.get("/api/v1/projects"))["items"]
    assert sorted((p["name"], p["status"]) for p in items) == sorted(
        [(items[0]["name"], "active"), ("old-pki", "legacy")]
    )
    # Applications stay where they were: a legacy project is not served by them.
    apps = (await gateway.get("/api/v1/applications"))["items"]
    assert [a["slug"] for a in apps] == ["demo"]


async def test_fail_create_duplicate_name(gateway: Gateway) -> None:
    await gateway.post("/api/v1/projects", {"name": "twice"}, status=201)
    again = await gateway.post("/api/v1/projects", {"name": "twice"}, status=409)
    assert again["error"]["code"] == "conflict"


async def test_fail_activate_unknown_project(gateway: Gateway) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    data = await gateway.post(f"/api/v1/projects/{missing}/activate", {}, status=404)
    assert data["error"]["code"] == "not_found"


async def test_ok_activation_switch(gateway: Gateway) -> None:
    """Project A (the bootstrap's) serves demo; after B is activated, demo answers 404 on
    every front-end while A's legacy profile keeps working; activating A again restores it."""
    boot = gateway.bootstrap
    legacy = legacy_urls(boot)
    project_a = (await gateway.get("/api/v1/projects"))["items"][0]["id"]
    served = [APP_ACME, APP_EST, LABEL_EST, APP_SCEP]
    for path in served + list(legacy.values()):
        assert await status_of(gateway, path) == 200, path
    await gateway.get("/api/v1/applications/demo/certificates")

    b = await gateway.post("/api/v1/projects", {"name": "project-b"}, status=201)
    switched = await gateway.post(f"/api/v1/projects/{b['id']}/activate", {}, status=200)
    assert switched["status"] == "active"
    statuses = {p["id"]: p["status"] for p in (await gateway.get("/api/v1/projects"))["items"]}
    assert statuses == {project_a: "legacy", b["id"]: "active"}

    # A's application is gone from every front-end, as an unknown application would be.
    for path in served:
        assert await status_of(gateway, path) == 404, path
    for path in (
        "/api/v1/applications/demo",
        "/api/v1/applications/demo/certificates",
        "/api/v1/applications/demo/profiles",
    ):
        data = await gateway.get(path, status=404)
        assert data["error"]["code"] == "not_found", path
    issue = await gateway.post(
        gateway.issue_path(), {"subject": {"CN": "x.test"}, "sans": ["x.test"]}, status=404
    )
    assert issue["error"]["code"] == "not_found"
    assert (await gateway.get("/api/v1/applications"))["items"] == []

    # A's legacy profile endpoints keep answering, and keep issuing.
    for path in legacy.values():
        assert await status_of(gateway, path) == 200, path
    assert (await legacy_est_enroll(gateway, "after-switch.example.com"))[0] == 200

    # B can have an application of the same slug: slugs are per project.
    await gateway.post("/api/v1/applications", {"slug": "demo"}, status=201)
    await gateway.post(f"/api/v1/projects/{project_a}/activate", {}, status=200)
    for path in served:
        assert await status_of(gateway, path) == 200, path
    await gateway.get("/api/v1/applications/demo/certificates")


async def make_none_active(gw: Gateway) -> None:
    """The state no REST call reaches (activation always promotes one project): an
    organization with several projects, all legacy, as left by a data migration or a
    manual database edit. Built through the store."""
    await gw.post("/api/v1/projects", {"name": "second"}, status=201)
    async with gw.services.db.transaction() as tx:
        await tx.session.execute(update(tables.projects).values(status=ProjectStatus.LEGACY.value))


def assert_no_active(data: dict[str, Any]) -> None:
    assert data["error"]["code"] == "no_active_project", data
    assert "designate" in data["error"]["message"]
    assert "/api/v1/projects/{id}/activate" in data["error"]["message"]


async def test_fail_no_active_project(gateway: Gateway) -> None:
    await make_none_active(gateway)
    items = (await gateway.get("/api/v1/projects"))["items"]
    assert len(items) == 2 and {p["status"] for p in items} == {"legacy"}

    assert_no_active(await gateway.post("/api/v1/applications", {"slug": "new"}, status=409))
    assert_no_active(await gateway.get("/api/v1/applications", status=409))
    for path in (
        "/api/v1/applications/demo",
        "/api/v1/applications/demo/certificates",
        "/api/v1/applications/demo/profiles",
        "/api/v1/applications/demo/members",
    ):
        assert_no_active(await gateway.get(path, status=409))
    assert_no_active(
        await gateway.post(
            "/api/v1/applications/demo/profiles",
            {"profile": "tls-server"},
            status=409,
        )
    )
    assert_no_active(
        await gateway.post(
            gateway.issue_path(), {"subject": {"CN": "x.test"}, "sans": ["x.test"]}, status=409
        )
    )
    # Protocol front-ends have no such error form: an application URL is simply not served.
    for path in (APP_ACME, APP_EST, APP_SCEP):
        assert await status_of(gateway, path) == 404, path
    # Legacy profiles do not depend on an active project.
    assert (await legacy_est_enroll(gateway, "no-active.example.com"))[0] == 200

    # Designating one, as the message says, ends it.
    first = items[0]["id"]
    await gateway.post(f"/api/v1/projects/{first}/activate", {}, status=200)
    await gateway.post("/api/v1/applications", {"slug": "new"}, status=201)
    assert await status_of(gateway, APP_ACME) == 200
