"""SCEP transactions: retries, dynamic challenges (exactly-once, also under concurrency),
renewal, GetCert, GetCRL and CertPoll after approval."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from gateway.core.model import new_id
from gateway.core.scep import ScepChallenge, digest_hex, scep_scope
from gateway.services.certificates import resolve
from protocols.scep import settings as scep_admin
from tests.helpers import scepclient as sc
from tests.integration.scep.conftest import SETTINGS, STATIC

pytestmark = pytest.mark.asyncio


async def _count(scep) -> int:
    data = await scep.api("GET", "/api/v1/applications/demo/certificates?limit=1")
    return int(data["total"])


async def test_ok_repeated_transaction_id_returns_same_outcome(scep) -> None:
    device = sc.Requester.new("again.test")
    csr = sc.make_csr(device.key, "again.test", STATIC)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr), transaction_id="rep")
    before = await _count(scep)
    first = sc.read_reply(await scep.send(der), device)
    second = sc.read_reply(await scep.send(der), device)
    assert first.status == second.status == 0
    assert first.certificates[0] == second.certificates[0]
    assert await _count(scep) == before + 1
    # The same transactionID with another request once the first is final is a new
    # enrollment (test_scep_reenrollment.py).
    other = sc.make_csr(device.key, "other.test", STATIC)
    reply = await scep.enroll(device, other, transaction_id="rep")
    assert reply.status == 0


async def test_ok_failed_transaction_can_be_retried_with_a_fixed_request(scep) -> None:
    device = sc.Requester.new("fix.test")
    bad = sc.make_csr(device.key, "fix.example.org", STATIC)  # denied by the policy
    assert (await scep.enroll(device, bad, transaction_id="fix")).status == 2
    good = sc.make_csr(device.key, "fix.test", STATIC)
    assert (await scep.enroll(device, good, transaction_id="fix")).status == 0


async def test_ok_dynamic_challenge_once(scep) -> None:
    made = await scep.api("POST", SETTINGS + "/challenges", {"ttl_minutes": 5}, status=201)
    view = await scep.api("GET", SETTINGS)
    assert view["unused_challenges"] == 1 and view["has_static_challenge"]
    device = sc.Requester.new("dyn.test")
    csr = sc.make_csr(device.key, "dyn.test", made["challenge"])
    assert (await scep.enroll(device, csr)).status == 0
    other = sc.Requester.new("dyn2.test")
    csr2 = sc.make_csr(other.key, "dyn2.test", made["challenge"])
    reply = await scep.enroll(other, csr2)
    assert (reply.status, reply.fail_info) == (2, 2)
    assert (await scep.api("GET", SETTINGS))["unused_challenges"] == 0


async def test_fail_dynamic_challenge_expired(scep) -> None:
    now = scep.services.clock.now()
    value = "expired-challenge-value"
    owner = await _owner(scep)
    async with scep.services.db.transaction() as tx:
        expired = ScepChallenge(
            new_id(), owner, digest_hex(value.encode()), "t", now - timedelta(hours=2), now
        )
        await tx.scep.add_challenge(expired)
    device = sc.Requester.new("late.test")
    reply = await scep.enroll(device, sc.make_csr(device.key, "late.test", value))
    assert (reply.status, reply.fail_info) == (2, 2)


async def _owner(scep) -> str:
    target = await resolve(scep.services, "demo", "tls-server")
    async with scep.services.db.transaction(read_only=True) as tx:
        scope = scep_scope(await scep_admin.for_target(tx, target.application, target.profile))
    assert scope == f"attachment:{target.attachment.id}:scep"  # the form stored rows carry
    return scope


async def test_ok_concurrent_dynamic_challenge_exactly_one(scep) -> None:
    """issue 6: one dynamic challenge, many devices at once: exactly one enrolls."""
    made = await scep.api("POST", SETTINGS + "/challenges", {}, status=201)
    ra = await scep.ra()
    devices = [sc.Requester.new(f"race{i}.test") for i in range(8)]
    messages = [
        sc.pki_message(
            d,
            ra,
            19,
            sc.csr_der(sc.make_csr(d.key, f"race{i}.test", made["challenge"])),
            transaction_id=f"race-{i}",
        )
        for i, d in enumerate(devices)
    ]
    bodies = await asyncio.gather(*(scep.send(m) for m in messages))
    statuses = [sc.read_reply(b, d).status for b, d in zip(bodies, devices, strict=True)]
    assert sorted(statuses) == [0] + [2] * 7


async def test_ok_consume_challenge_repository_race(database) -> None:
    """The conditional UPDATE, raced in separate transactions: one winner (SQLite and
    PostgreSQL; the store is what makes it exactly-once)."""
    now = datetime.now(UTC)
    digest = digest_hex(b"one-time")
    async with database.transaction() as tx:
        await tx.scep.add_challenge(
            ScepChallenge(new_id(), "scope-x", digest, "t", now, now + timedelta(hours=1))
        )

    async def consume() -> bool:
        async with database.transaction() as tx:
            return await tx.scep.consume_challenge("scope-x", digest, datetime.now(UTC))

    results = await asyncio.gather(*(consume() for _ in range(12)))
    assert results.count(True) == 1


async def _enrolled(scep, cn: str) -> tuple[sc.Requester, x509.Certificate]:
    device = sc.Requester.new(cn)
    reply = await scep.enroll(device, sc.make_csr(device.key, cn, STATIC))
    assert reply.status == 0
    return device, reply.certificates[0]


async def test_ok_renewal_without_challenge(scep) -> None:
    device, cert = await _enrolled(scep, "renew.test")
    renewing = sc.Requester(device.key, cert)
    reply = await scep.enroll(
        renewing, sc.make_csr(device.key, "renew.test"), message_type=17, transaction_id="tx-1"
    )
    assert reply.status == 0, reply
    new = reply.certificates[0]
    assert new.serial_number != cert.serial_number and new.subject == cert.subject
    async with scep.services.db.transaction(read_only=True) as tx:
        stored = await tx.certificates.get_by_serial(format(new.serial_number, "x"))
        old = await tx.certificates.get_by_serial(format(cert.serial_number, "x"))
    assert stored is not None and old is not None and stored.renewed_from == old.id


async def test_fail_renewal_signed_by_revoked_certificate(scep) -> None:
    device, cert = await _enrolled(scep, "revoked.test")
    async with scep.services.db.transaction(read_only=True) as tx:
        stored = await tx.certificates.get_by_serial(format(cert.serial_number, "x"))
    assert stored is not None
    await scep.api(
        "POST",
        f"/api/v1/applications/demo/certificates/{stored.id}/revoke",
        {"reason": "key_compromise"},
    )
    reply = await scep.enroll(
        sc.Requester(device.key, cert), sc.make_csr(device.key, "revoked.test"), message_type=17
    )
    assert (reply.status, reply.fail_info) == (2, 2)


async def test_ok_get_cert_and_get_crl(scep) -> None:
    device, cert = await _enrolled(scep, "fetch.test")
    ra, issuing, _ = await scep.ca_certs()
    content = sc.issuer_and_serial(issuing.subject, cert.serial_number)
    reply = sc.read_reply(await scep.send(sc.pki_message(device, ra, 21, content)), device)
    assert reply.status == 0 and reply.certificates == [cert]
    reply = sc.read_reply(await scep.send(sc.pki_message(device, ra, 22, content)), device)
    assert reply.status == 0 and len(reply.crls) == 1
    crl = x509.load_der_x509_crl(reply.crls[0])
    assert crl.issuer == issuing.subject and crl.is_signature_valid(issuing.public_key())


async def test_ok_certpoll_after_approval(scep) -> None:
    principals = (await scep.api("GET", "/api/v1/principals"))["items"]
    admin = next(p["id"] for p in principals if p["name"] == "admin")
    policy = {"steps": [{"approvers": [admin], "required": 1}]}
    await scep.api(
        "PUT", "/api/v1/applications/demo/profiles/tls-server/approval-policy", policy, status=201
    )
    device = sc.Requester.new("wait.test")
    csr = sc.make_csr(device.key, "wait.test", STATIC)
    ra, issuing, _ = await scep.ca_certs()
    reply = await scep.enroll(device, csr, transaction_id="wait-1")
    assert reply.status == 3  # PENDING
    poll = sc.issuer_and_subject(issuing.subject, csr.subject)
    message = sc.pki_message(device, ra, 20, poll, transaction_id="wait-1")
    assert sc.read_reply(await scep.send(message), device).status == 3
    requests = await scep.api("GET", "/api/v1/applications/demo/requests")
    request_id = next(r["id"] for r in requests["items"] if r["requester"] == "scep:wait-1")
    await scep.api("POST", f"/api/v1/applications/demo/requests/{request_id}/approve", {})
    reply = sc.read_reply(await scep.send(message), device)
    assert reply.status == 0, reply
    assert reply.certificates[0].subject == csr.subject
    # Re-sending the PKCSReq now gets the same certificate, not a second one.
    again = await scep.enroll(device, csr, transaction_id="wait-1")
    assert again.status == 0 and again.certificates == reply.certificates


async def test_fail_certpoll_after_rejection(scep) -> None:
    """A rejected request: CertPoll answers FAILURE badRequest, and so does the retry."""
    principals = (await scep.api("GET", "/api/v1/principals"))["items"]
    admin = next(p["id"] for p in principals if p["name"] == "admin")
    policy = {"steps": [{"approvers": [admin], "required": 1}]}
    await scep.api(
        "PUT", "/api/v1/applications/demo/profiles/tls-server/approval-policy", policy, status=201
    )
    device = sc.Requester.new("no.test")
    csr = sc.make_csr(device.key, "no.test", STATIC)
    ra, issuing, _ = await scep.ca_certs()
    assert (await scep.enroll(device, csr, transaction_id="no-1")).status == 3
    requests = await scep.api("GET", "/api/v1/applications/demo/requests")
    request_id = next(r["id"] for r in requests["items"] if r["requester"] == "scep:no-1")
    await scep.api(
        "POST", f"/api/v1/applications/demo/requests/{request_id}/reject", {"comment": "nope"}
    )
    poll = sc.issuer_and_subject(issuing.subject, csr.subject)
    message = sc.pki_message(device, ra, 20, poll, transaction_id="no-1")
    reply = sc.read_reply(await scep.send(message), device)
    assert (reply.status, reply.fail_info) == (2, 2), reply
    again = await scep.enroll(device, csr, transaction_id="no-1")
    assert (again.status, again.fail_info) == (2, 2)
