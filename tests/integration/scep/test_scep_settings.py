"""SCEP settings through the REST API: who may do what, the static challenge rules, RA
rotation, the dynamic-challenge cap, and the bootstrap.json keys of a first start."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.app import create_app
from gateway.core.scep import RA_ROTATION_GRACE, scep_scope
from gateway.pki.kms import secret_aad
from gateway.pki.passwords import verify_secret
from gateway.services.audit import SYSTEM
from gateway.services.certificates import resolve
from protocols.scep import settings as scep_admin
from tests.helpers import scepclient as sc
from tests.integration.api.conftest import make_config
from tests.integration.scep.conftest import SETTINGS, STATIC, Scep

pytestmark = pytest.mark.asyncio


async def _member(scep, role: str, kind: str = "user") -> str:
    body = {"name": f"p-{role}-{kind}", "product_role": "member", "kind": kind}
    principal = await scep.api("POST", "/api/v1/principals", body, 201)
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


async def test_machine_identity_makes_dynamic_challenges(scep) -> None:
    """issue 6: dynamic challenges come from an Operator or a machine identity (an MDM)."""
    headers = {"Authorization": f"Bearer {await _member(scep, 'operator', 'machine')}"}
    resp = await scep.client.post(SETTINGS + "/challenges", json={}, headers=headers)
    assert resp.status == 201, await resp.text()
    challenge = (await resp.json())["challenge"]
    device = sc.Requester.new("mdm.test")
    assert (await scep.enroll(device, sc.make_csr(device.key, "mdm.test", challenge))).status == 0


async def test_dynamic_challenge_default_ttl_is_60_minutes(scep) -> None:
    before = datetime.now(UTC)
    made = await scep.api("POST", SETTINGS + "/challenges", {}, 201)
    expires = datetime.fromisoformat(made["expires_at"])
    assert before + timedelta(minutes=59) < expires <= datetime.now(UTC) + timedelta(minutes=60)
    made = await scep.api("POST", SETTINGS + "/challenges", {"ttl_minutes": 5}, 201)
    assert datetime.fromisoformat(made["expires_at"]) <= datetime.now(UTC) + timedelta(minutes=5)


async def test_secrets_stored_encrypted_and_hashed(scep) -> None:
    """The RA key is stored encrypted; the static challenge only as an scrypt hash, itself
    encrypted: neither the key nor the challenge appears in the database row."""
    owner = await _owner(scep)
    async with scep.services.db.transaction(read_only=True) as tx:
        ra = await tx.secrets.get_by_owner(owner, scep_admin.RA_PURPOSE)
        challenge = await tx.secrets.get_by_owner(owner, scep_admin.CHALLENGE_PURPOSE)
    assert ra is not None and challenge is not None
    assert b"PRIVATE KEY" not in ra.ciphertext and b"CERTIFICATE" not in ra.ciphertext
    key, cert = await scep_admin.load_ra(scep.services, ra)
    assert cert == await scep.ra()
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der_key not in ra.ciphertext
    assert STATIC.encode() not in challenge.ciphertext
    hashed = await scep.services.kms.decrypt(
        challenge.project_id, challenge.ciphertext, secret_aad(challenge.id)
    )
    assert STATIC.encode() not in hashed
    assert verify_secret(STATIC, hashed.decode()) and not verify_secret("other", hashed.decode())


async def test_ra_per_enrollment(scep) -> None:
    """Each enrollment (attachment, legacy profile) has its own RA, issued by its CA."""
    legacy = scep.bootstrap["legacy_profile_id"]
    await scep.api("PATCH", f"/api/v1/profiles/{legacy}/scep", {"enabled": True})
    app_ra, issuing, _ = await scep.ca_certs()
    legacy_ra, legacy_issuing, _ = await scep.ca_certs(f"/profiles/{legacy}/scep")
    assert app_ra != legacy_ra and app_ra.public_key() != legacy_ra.public_key()
    app_ra.verify_directly_issued_by(issuing)
    legacy_ra.verify_directly_issued_by(legacy_issuing)
    assert "tls-server" in app_ra.subject.rfc4514_string()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"challenge": "short"}, 400, id="fail/too-short"),
        pytest.param({"challenge": "7-chars"}, 400, id="fail/seven"),
        pytest.param({"challenge": "8-chars!"}, 201, id="ok/eight"),
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
        # The new challenge enrolls; the one it replaced no longer does.
        device = sc.Requester.new("new.test")
        csr = sc.make_csr(device.key, "new.test", data["challenge"])
        assert (await scep.enroll(device, csr, transaction_id="new")).status == 0
        old = sc.make_csr(device.key, "old.test", STATIC)
        reply = await scep.enroll(device, old, transaction_id="old")
        assert (reply.status, reply.fail_info) == (2, 2)
    else:
        device = sc.Requester.new("kept.test")  # the previous challenge still holds
        csr = sc.make_csr(device.key, "kept.test", STATIC)
        assert (await scep.enroll(device, csr)).status == 0


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
        enrollment = await scep_admin.for_target(tx, target.application, target.profile)
        view = await scep_admin.rotate_ra(
            scep.services, tx, SYSTEM, enrollment, keep_previous=False
        )
    assert view["previous_ra"] is None
    reply = (await _stale(scep, old, "nograce.test"))[1]
    assert (reply.status, reply.fail_info) == (2, 1)


async def test_rotate_ra_without_grace_through_rest(scep) -> None:
    old = await scep.ra()
    view = await scep.api("POST", SETTINGS + "/ra/rotate", {"keep_previous": False}, 201)
    assert view["previous_ra"] is None
    reply = (await _stale(scep, old, "nograce-rest.test"))[1]
    assert (reply.status, reply.fail_info) == (2, 1)
    bad = await scep.api("POST", SETTINGS + "/ra/rotate", {"keep_previous": "no"}, 400)
    assert bad["error"]["code"] == "invalid_input"


async def _owner(scep) -> str:
    target = await resolve(scep.services, "demo", "tls-server")
    async with scep.services.db.transaction(read_only=True) as tx:
        scope = scep_scope(await scep_admin.for_target(tx, target.application, target.profile))
    assert scope == f"attachment:{target.attachment.id}:scep"  # the form stored rows carry
    return scope


async def test_dynamic_challenge_cap(scep, monkeypatch) -> None:
    monkeypatch.setattr(scep_admin, "MAX_UNUSED_CHALLENGES", 2)
    for _ in range(2):
        await scep.api("POST", SETTINGS + "/challenges", {}, 201)
    data = await scep.api("POST", SETTINGS + "/challenges", {}, 400)
    assert data["error"]["code"] == "too_many_challenges"
    await scep.api("POST", SETTINGS + "/challenges", {"ttl_minutes": 0}, 400)


async def test_first_start_bootstrap_json_scep_keys_enroll(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    """`certgate serve` first start: bootstrap.json has scep_url and scep_challenge (and the
    legacy pair), and they enroll as written, with nothing set up afterwards."""
    config = make_config(tmp_path / "home", database_url)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    scep = Scep(client, bootstrap)
    base = config.base_url.rstrip("/")
    assert bootstrap["scep_url"] == base + "/applications/demo/profiles/tls-server/scep"
    legacy = f"{base}/profiles/{bootstrap['legacy_profile_id']}/scep"
    assert bootstrap["legacy_scep_url"] == legacy
    for url_key, challenge_key in (
        ("scep_url", "scep_challenge"),
        ("legacy_scep_url", "legacy_scep_challenge"),
    ):
        assert len(bootstrap[challenge_key]) >= 8
        path = bootstrap[url_key][len(base) :]
        device = sc.Requester.new("boot.test")
        csr = sc.make_csr(device.key, "boot.test", bootstrap[challenge_key])
        reply = await scep.enroll(device, csr, path=path, transaction_id=url_key)
        assert reply.status == 0, (url_key, reply)
