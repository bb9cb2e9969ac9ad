"""SCEP settings through the REST API: who may do what, the static challenge rules, RA
rotation, the dynamic-challenge cap, and bootstrap_scep's bootstrap.json keys."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

import pytest
from cryptography import x509

from gateway.admin import scep as scep_admin
from gateway.admin.audit import SYSTEM
from gateway.admin.certificates import resolve
from gateway.core.scep import RA_ROTATION_GRACE
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


async def _stale(scep, ra: x509.Certificate, cn: str) -> tuple[sc.Requester, sc.Reply]:
    """A PKCSReq encrypted to `ra` (what a device that fetched GetCACert earlier sends)."""
    device = sc.Requester.new(cn)
    csr = sc.make_csr(device.key, cn, STATIC)
    der = sc.pki_message(device, ra, 19, sc.csr_der(csr), transaction_id=f"stale-{cn}")
    return device, sc.read_reply(await scep.send(der), device)


async def test_rotate_ra(scep) -> None:
    # No waiting: the rotation's write drops the process's read cache (store.cache).
    old = await scep.ra()
    assert (await scep.api("GET", SETTINGS))["previous_ra"] is None
    view = await scep.api("POST", SETTINGS + "/ra/rotate", None, 201)
    new, *chain = await scep.ca_certs()
    assert new != old and view["ra"]["serial"] == format(new.serial_number, "x")
    assert old not in chain  # GetCACert serves only the new RA from now on
    assert view["previous_ra"]["serial"] == format(old.serial_number, "x")
    device = sc.Requester.new("rot.test")
    reply = await scep.enroll(device, sc.make_csr(device.key, "rot.test", STATIC))
    assert reply.status == 0 and reply.signer == new


async def test_rotate_ra_grace_period_then_refused(scep, caplog) -> None:
    """A device that fetched the old RA just before a rotation still enrolls: the old RA
    decrypts its request and signs the answer, until RA_ROTATION_GRACE has passed."""
    old = await scep.ra()
    await scep.api("POST", SETTINGS + "/ra/rotate", None, 201)
    new = await scep.ra()
    _, reply = await _stale(scep, old, "grace.test")
    assert reply.status == 0, reply
    assert reply.signer == old and reply.certificates[0].subject.rfc4514_string() == (
        "CN=grace.test"
    )
    owner = await _owner(scep)
    async with scep.services.db.transaction() as tx:
        previous = await tx.secrets.get_by_owner(owner, scep_admin.PREVIOUS_RA_PURPOSE)
        assert previous is not None
        long_ago = scep.services.clock.now() - RA_ROTATION_GRACE - timedelta(seconds=1)
        await tx.secrets.replace(dataclasses.replace(previous, created_at=long_ago))
    assert (await scep.api("GET", SETTINGS))["previous_ra"] is None
    caplog.set_level(logging.INFO, "certgate.scep")
    _, reply = await _stale(scep, old, "late.test")
    assert (reply.status, reply.fail_info) == (2, 1) and reply.signer == new
    assert "not encrypted to this RA" in caplog.text


async def test_rotate_ra_twice_keeps_only_the_last_previous(scep) -> None:
    first = await scep.ra()
    await scep.api("POST", SETTINGS + "/ra/rotate", None, 201)
    second = await scep.ra()
    await scep.api("POST", SETTINGS + "/ra/rotate", None, 201)
    assert (await _stale(scep, second, "second.test"))[1].status == 0
    reply = (await _stale(scep, first, "first.test"))[1]
    assert (reply.status, reply.fail_info) == (2, 1)


async def test_rotate_ra_without_grace(scep) -> None:
    """keep_previous=False (a compromised RA key): the old RA stops answering at once."""
    old = await scep.ra()
    target = await resolve(scep.services, "demo", "tls-server")
    async with scep.services.db.transaction() as tx:
        enrollment = await scep_admin.for_target(tx, target)
        view = await scep_admin.rotate_ra(
            scep.services, tx, SYSTEM, enrollment, keep_previous=False
        )
    assert view["previous_ra"] is None
    reply = (await _stale(scep, old, "nograce.test"))[1]
    assert (reply.status, reply.fail_info) == (2, 1)


async def _owner(scep) -> str:
    target = await resolve(scep.services, "demo", "tls-server")
    async with scep.services.db.transaction(read_only=True) as tx:
        return (await scep_admin.for_target(tx, target)).owner


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
