"""EST under an approval policy (RFC 7030 §4.2.3): 202 + Retry-After while an approver
decides; the device repeating the same request gets its certificate once approved, or a
fresh request once rejected. serverkeygen holds its key, encrypted, until the approved
retry, and hands it out once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from est_helpers import EstGateway, b64, certs_from_cms, csr_der, keygen_parts, proxy_header
from sqlalchemy import text, update

from gateway.appkeys import SERVICES
from protocols.est import settings as est_admin
from store import tables

POLICY = "/api/v1/applications/demo/profiles/tls-server/approval-policy"
REQUESTS = "/api/v1/applications/demo/requests"


async def _approver(gw: EstGateway, name: str) -> dict[str, str]:
    """A principal the policy names as its approver; its Authorization header."""
    created = await gw.api(
        "POST", "/api/v1/principals", {"name": name, "kind": "user", "product_role": "admin"}, 201
    )
    token = await gw.api("POST", f"/api/v1/principals/{created['id']}/tokens", {"name": "t"}, 201)
    await gw.api("PUT", POLICY, {"steps": [{"approvers": [name], "required": 1}]}, 201)
    return {"Authorization": f"Bearer {token['token']}"}


async def _decide(gw: EstGateway, who: dict[str, str], request_id: str, verdict: str) -> Any:
    resp = await gw.client.post(
        f"{REQUESTS}/{request_id}/{verdict}", json={"comment": "checked"}, headers=who
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_ok_pending_then_approved(est_gw: EstGateway) -> None:
    approver = await _approver(est_gw, "est-approver")
    der, _ = csr_der("waits.example.com")
    status, headers, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 202, body
    assert int(headers["Retry-After"]) > 0
    # The same device asking again is the same request, still waiting: no second one.
    status, _, _ = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 202
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    assert len(listed["items"]) == 1
    decided = await _decide(est_gw, approver, listed["items"][0]["id"], "approve")
    assert decided["state"] == "issued"
    status, _, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 200, body
    (cert,) = certs_from_cms(body)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "waits.example.com"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["waits.example.com"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert format(cert.serial_number, "x") in str(
        await est_gw.api(
            "GET", f"/api/v1/applications/demo/certificates/{decided['certificate_id']}"
        )
    )
    # Asking once more returns that same certificate, not a new one.
    status, _, again = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 200 and certs_from_cms(again)[0].serial_number == cert.serial_number


async def test_fail_rejected_request_is_refused(est_gw: EstGateway) -> None:
    approver = await _approver(est_gw, "est-rejecter")
    der, _ = csr_der("nope.example.com")
    status, _, _ = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 202
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    await _decide(est_gw, approver, listed["items"][0]["id"], "reject")
    status, headers, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    # A fresh request opens (the rejected one is final): the device waits again rather
    # than getting a certificate nobody approved.
    assert status == 202, body
    assert headers["Content-Type"].startswith("text/plain")


async def test_ok_other_csr_is_another_request(est_gw: EstGateway) -> None:
    """Recognition is by requester + CSR: the same device with a new CSR asks anew."""
    await _approver(est_gw, "est-two")
    one, _ = csr_der("one.example.com")
    other, _ = csr_der("two.example.com")
    for der in (one, other, one):
        status, _, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
        assert status == 202, body
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    assert sorted(i["requester"] for i in listed["items"]) == ["est:basic:est"] * 2


async def _held_keys(gw: EstGateway) -> int:
    services = gw.client.server.app[SERVICES]
    async with services.db.transaction(read_only=True) as tx:
        rows = await tx.session.execute(
            text("SELECT count(*) FROM secrets WHERE purpose = :p"),
            {"p": est_admin.KEYGEN_PURPOSE},
        )
        return int(rows.scalar_one())


async def test_ok_serverkeygen_pending_then_key_handed_out_once(est_gw: EstGateway) -> None:
    approver = await _approver(est_gw, "est-keygen")
    der, _ = csr_der("keygen.example.com")
    for _ in range(2):  # the repeat joins the same request and the same held key
        status, headers, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
        assert status == 202, body
        assert int(headers["Retry-After"]) > 0
    assert await _held_keys(est_gw) == 1
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    assert len(listed["items"]) == 1
    decided = await _decide(est_gw, approver, listed["items"][0]["id"], "approve")
    assert decided["state"] == "issued"
    status, headers, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 200, body
    key, cert = keygen_parts(headers, body)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=keygen.example.com"
    assert await _held_keys(est_gw) == 0  # handed out once, then gone
    # Repeating after that is a new enrollment (new key, new request), never the old key.
    status, _, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 202, body
    assert await _held_keys(est_gw) == 1


async def test_ok_abandoned_held_keys_are_purged(est_gw: EstGateway) -> None:
    """A key held for a device that never came back goes once it is older than
    HELD_KEY_LIFETIME, when the next key is held."""
    await _approver(est_gw, "est-keygen-purge")
    old, _ = csr_der("gone.example.com")
    status, _, body = await est_gw.post("serverkeygen", b64(old), auth=est_gw.basic)
    assert status == 202, body
    services = est_gw.client.server.app[SERVICES]
    stale = services.clock.now() - est_admin.HELD_KEY_LIFETIME - timedelta(minutes=1)
    async with services.db.transaction() as tx:
        await tx.session.execute(
            update(tables.secrets)
            .where(tables.secrets.c.purpose == est_admin.KEYGEN_PURPOSE)
            .values(created_at=stale)
        )
    fresh, _ = csr_der("here.example.com")
    status, _, body = await est_gw.post("serverkeygen", b64(fresh), auth=est_gw.basic)
    assert status == 202, body
    assert await _held_keys(est_gw) == 1  # the stale one went, the new one stays


async def test_fail_serverkeygen_denied_under_approval_holds_nothing(est_gw: EstGateway) -> None:
    await _approver(est_gw, "est-keygen-deny")
    der, _ = csr_der("evil.org", sans=["evil.org"])
    status, headers, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 403, body
    assert headers["Content-Type"].startswith("text/plain")
    assert await _held_keys(est_gw) == 0
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    assert listed["items"] == []  # nothing was stored


async def test_ok_serverkeygen_without_approval_holds_nothing(est_gw: EstGateway) -> None:
    der, _ = csr_der("direct.example.com")
    status, _, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 200, body
    assert await _held_keys(est_gw) == 0


async def test_ok_simplereenroll_pending_then_approved(est_gw: EstGateway) -> None:
    """Re-enrollment waits too (§4.2.3); the repeat with the same certificate and CSR is
    the same request."""
    old = await est_gw.enroll("renew.example.com")
    approver = await _approver(est_gw, "est-renewer")
    der, _ = csr_der("renew.example.com")
    for _ in range(2):
        status, headers, body = await est_gw.post(
            "simplereenroll", b64(der), headers=proxy_header(old)
        )
        assert status == 202, body
        assert int(headers["Retry-After"]) > 0
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    (item,) = listed["items"]
    await _decide(est_gw, approver, item["id"], "approve")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(old))
    assert status == 200, body
    (new,) = certs_from_cms(body)
    assert new.subject == old.subject and new.serial_number != old.serial_number


async def test_ok_concurrent_serverkeygen_repeats_share_one_key(est_gw: EstGateway) -> None:
    await _approver(est_gw, "est-keygen-race")
    der, _ = csr_der("race.example.com")
    results = await asyncio.gather(
        *(est_gw.post("serverkeygen", b64(der), auth=est_gw.basic) for _ in range(4))
    )
    assert [status for status, _, _ in results] == [202] * 4, results
    assert await _held_keys(est_gw) == 1
    listed = await est_gw.api("GET", f"{REQUESTS}?state=open")
    assert len(listed["items"]) == 1
