"""A device re-enrolling with the same key pair, and so the same transactionID (micromdm's
scepclient derives it from the public key): a new CSR once the earlier transaction is
final is a new enrollment, and a retransmission (same transactionID, same CSR) keeps its
outcome (RFC 8894 §3.2.1.1)."""

from __future__ import annotations

from tests.helpers import scepclient as sc
from tests.integration.scep.conftest import STATIC

POLICY = "/api/v1/applications/demo/profiles/tls-server/approval-policy"


async def count(scep) -> int:
    data = await scep.api("GET", "/api/v1/applications/demo/certificates?limit=1")
    return int(data["total"])


async def test_ok_same_key_new_csr_after_issuance_is_a_new_enrollment(scep) -> None:
    device = sc.Requester.new("re.test")
    tid = "derived-from-the-public-key"
    first_csr = sc.make_csr(device.key, "re.test", STATIC)
    first = await scep.enroll(device, first_csr, transaction_id=tid)
    assert first.status == 0, first
    second_csr = sc.make_csr(device.key, "re.test", STATIC, sans=("re.test", "alt.test"))
    ra = await scep.ra()
    der = sc.pki_message(device, ra, 19, sc.csr_der(second_csr), transaction_id=tid)
    second = sc.read_reply(await scep.send(der), device)
    assert second.status == 0, second
    assert second.certificates[0].serial_number != first.certificates[0].serial_number
    assert await count(scep) == 2
    # A retransmission of the second request gets the second certificate again.
    again = sc.read_reply(await scep.send(der), device)
    assert again.status == 0 and again.certificates == second.certificates
    assert await count(scep) == 2


async def test_ok_new_csr_after_a_failure_is_a_new_enrollment(scep) -> None:
    device = sc.Requester.new("fail.test")
    denied = sc.make_csr(device.key, "fail.example.org", STATIC)
    assert (await scep.enroll(device, denied, transaction_id="k")).status == 2
    good = sc.make_csr(device.key, "fail.test", STATIC)
    assert (await scep.enroll(device, good, transaction_id="k")).status == 0


async def test_fail_new_csr_while_the_transaction_is_pending(scep) -> None:
    principals = (await scep.api("GET", "/api/v1/principals"))["items"]
    admin = next(p["id"] for p in principals if p["name"] == "admin")
    await scep.api("PUT", POLICY, {"steps": [{"approvers": [admin]}]}, status=201)
    device = sc.Requester.new("wait.test")
    csr = sc.make_csr(device.key, "wait.test", STATIC)
    assert (await scep.enroll(device, csr, transaction_id="w")).status == 3  # PENDING
    other = sc.make_csr(device.key, "other.test", STATIC)
    reply = await scep.enroll(device, other, transaction_id="w")
    assert (reply.status, reply.fail_info) == (2, 2)  # badRequest: still in flight
    # The original request, retransmitted, is still pending.
    assert (await scep.enroll(device, csr, transaction_id="w")).status == 3
