"""SCEP settings through the REST API: who may do what, the static challenge rules, RA
rotation, the dynamic-challenge cap, and bootstrap_scep's bootstrap.json keys."""

from __future__ import annotations

import uuid

import pytest

from gateway.admin import scep as scep_admin
from gateway.admin.audit import SYSTEM
from gateway.admin.certificates import resolve
from tests.helpers import scepclient as sc
from tests.integration.scep.conftest import SETTINGS, STATIC

pytestmark = pytest.mark.asyncio


async def _member(scep, role: str) -> str:
    principal = await scep.api(
        "POST", "/api/v1/principals", {"name": f"p-{role}", "product_role": "member"}, 201
    )
    await scep.api(
        "POST",
        "/api/v1/applications/demo/members",
        {"principal": principal["id"], "role": role},
        201,
    )
    token = await scep.api(
        "POST", f"/api/v1/principals/{principal['id']}/tokens", {"name": "t"}, 201
    )
    return str(token["token"])


@pytest.mark.parametrize(
    ("role", "challenges", "patch"),
    [
        pytest.param("operator", 201, 403, id="ok/operator-makes-challenges"),
        pytest.param("auditor", 403, 403, id="fail/auditor"),
        pytest.param("admin", 201, 200, id="ok/admin"),
    ],
)
async def test_permissions(scep, role: str, challenges: int, patch: int) -> None:
    headers = {"Authorization": f"Bearer {await _member(scep, role)}"}
    resp = await scep.client.post(SETTINGS + "/challenges", json={}, headers=headers)
    assert resp.status == challenges, await resp.text()
    resp = await scep.client.patch(SETTINGS, json={"enabled": True}, headers=headers)
    assert resp.status == patch
    resp = await scep.client.get(SETTINGS, headers=headers)
    assert resp.status == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"challenge": "short"}, 400, id="fail/too-short"),
        pytest.param({"challenge": 12345678}, 400, id="fail/not-a-string"),
        pytest.param({"challenge": "long-enough"}, 201, id="ok/given"),
        pytest.param({}, 201, id="ok/generated"),
    ],
)
async def test_static_challenge_rules(scep, body: dict, status: int) -> None:
    data = await scep.api("POST", SETTINGS + "/challenge", body, status)
    if status == 201:
        assert len(data["challenge"]) >= 8
        view = await scep.api("GET", SETTINGS)
        assert view["has_static_challenge"] and data["challenge"] not in str(view)


async def test_rotate_ra(scep) -> None:
    # No waiting: the rotation's write drops the process's read cache (store.cache).
    old = await scep.ra()
    view = await scep.api("POST", SETTINGS + "/ra/rotate", None, 201)
    new = await scep.ra()
    assert new != old and view["ra"]["serial"] == format(new.serial_number, "x")
    device = sc.Requester.new("rot.test")
    csr = sc.make_csr(device.key, "rot.test", STATIC)
    assert (await scep.enroll(device, csr)).status == 0
    stale = sc.pki_message(device, old, 19, sc.csr_der(csr), transaction_id="stale")
    reply = sc.read_reply(await scep.send(stale), device)
    assert (reply.status, reply.fail_info) == (2, 1)


async def test_dynamic_challenge_cap(scep, monkeypatch) -> None:
    monkeypatch.setattr(scep_admin, "MAX_UNUSED_CHALLENGES", 2)
    for _ in range(2):
        await scep.api("POST", SETTINGS + "/challenges", {}, 201)
    data = await scep.api("POST", SETTINGS + "/challenges", {}, 400)
    assert data["error"]["code"] == "too_many_challenges"
    await scep.api("POST", SETTINGS + "/challenges", {"ttl_minutes": 0}, 400)


async def test_bootstrap_scep_keys_enroll(scep) -> None:
    services = scep.services
    target = await resolve(services, "demo", "tls-server")
    async with services.db.transaction() as tx:
        legacy = await tx.profiles.get(uuid.UUID(scep.bootstrap["legacy_profile_id"]))
        assert legacy is not None
        data = await scep_admin.bootstrap_scep(
            services, tx, SYSTEM, target.application, target.profile, legacy
        )
    assert set(data) == {"scep_url", "scep_challenge", "legacy_scep_url", "legacy_scep_challenge"}
    base = services.config.base_url.rstrip("/")
    for url_key, challenge_key in (
        ("scep_url", "scep_challenge"),
        ("legacy_scep_url", "legacy_scep_challenge"),
    ):
        path = data[url_key][len(base) :]
        device = sc.Requester.new("boot.test")
        csr = sc.make_csr(device.key, "boot.test", data[challenge_key])
        reply = await scep.enroll(device, csr, path=path, transaction_id=url_key)
        assert reply.status == 0, (url_key, reply)
