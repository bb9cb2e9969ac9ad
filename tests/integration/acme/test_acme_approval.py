"""An approval policy on the application: finalize leaves the order `processing` with
Retry-After (RFC 8555 §7.4, §7.1.6); an approver's decision through the REST API moves it
to `valid` with a certificate, or to `invalid` with an error."""

from __future__ import annotations

from typing import Any

from tests.helpers.acmeclient import AcmeClient, b64, csr_der
from tests.helpers.acmeharness import AcmeGateway, check_chain

POLICY = "/api/v1/applications/demo/profiles/tls-server/approval-policy"
REQUESTS = "/api/v1/applications/demo/requests"


async def _approver(gateway: AcmeGateway, name: str) -> str:
    """A principal named in the approval policy; its token."""
    created = await gateway.rest(
        "POST",
        "/api/v1/principals",
        {"name": name, "kind": "user", "product_role": "admin"},
        status=201,
    )
    token = await gateway.rest(
        "POST", f"/api/v1/principals/{created['id']}/tokens", {"name": "t"}, status=201
    )
    await gateway.rest("PUT", POLICY, {"steps": [{"approvers": [name], "required": 1}]}, status=201)
    return str(token["token"])


async def _finalize_pending(
    gateway: AcmeGateway, client: AcmeClient, names: list[str]
) -> tuple[str, dict[str, Any]]:
    """Finalize under the approval policy: (order URL, the open approval request)."""
    ready = await gateway.ready_order(client, names)
    assert ready.body["status"] == "ready", ready.body
    der, _key = csr_der(names)
    final = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert final.status == 200, final.body
    assert final.body["status"] == "processing" and "certificate" not in final.body
    assert int(final.headers["Retry-After"]) >= 1
    order_url = ready.headers["Location"]
    # Polling before anyone decides: still processing, still told when to come back.
    again = await client.post(order_url, None)
    assert again.body["status"] == "processing", again.body
    assert int(again.headers["Retry-After"]) >= 1
    # A second finalize must not open a second request (§7.4: only a ready order finalizes).
    twice = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert twice.problem == "orderNotReady"
    listed = await gateway.rest("GET", f"{REQUESTS}?state=open", status=200)
    assert listed["total"] == 1, listed
    request = listed["items"][0]
    account_id = (client.kid or "").rstrip("/").rsplit("/", 1)[-1]
    assert request["requester"] == f"acme:{account_id}"
    assert request["method"] == "acme"
    return order_url, request


async def test_ok_pending_then_approved_issues(acme_gateway: AcmeGateway) -> None:
    token = await _approver(acme_gateway, "alice")
    client = await acme_gateway.account()
    names = ["approve.example.com", "127.0.0.1"]
    order_url, request = await _finalize_pending(acme_gateway, client, names)

    approved = await acme_gateway.rest(
        "POST", f"{REQUESTS}/{request['id']}/approve", {}, token=token, status=200
    )
    assert approved["state"] == "issued" and approved["certificate_id"]

    done = await client.post(order_url, None)
    assert done.body["status"] == "valid", done.body
    assert "Retry-After" not in done.headers
    assert done.body["certificate"].endswith(approved["certificate_id"])
    chain = await client.post(done.body["certificate"], None)
    assert chain.status == 200
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    check_chain(chain.text, names, acme_gateway.root_pem)
    # The order stays valid, and the REST API shows the same certificate.
    assert (await client.post(order_url, None)).body["status"] == "valid"
    stored = await acme_gateway.rest(
        "GET", f"/api/v1/applications/demo/certificates/{approved['certificate_id']}", status=200
    )
    assert stored["certificate_pem"] in chain.text


async def test_fail_pending_then_rejected_invalidates(acme_gateway: AcmeGateway) -> None:
    token = await _approver(acme_gateway, "bob")
    client = await acme_gateway.account()
    order_url, request = await _finalize_pending(acme_gateway, client, ["reject.example.com"])

    await acme_gateway.rest(
        "POST",
        f"{REQUESTS}/{request['id']}/reject",
        {"comment": "not a host we run"},
        token=token,
        status=200,
    )
    done = await client.post(order_url, None)
    assert done.body["status"] == "invalid", done.body
    assert "certificate" not in done.body and "Retry-After" not in done.headers
    error = done.body["error"]
    assert error["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert "rejected" in error["detail"] and "not a host we run" in error["detail"]
    # Nothing was issued for it.
    decided = await acme_gateway.rest("GET", f"{REQUESTS}/{request['id']}", status=200)
    assert decided["state"] == "rejected" and decided["certificate_id"] is None
    certificates = await acme_gateway.rest(
        "GET", "/api/v1/applications/demo/certificates?q=reject.example.com", status=200
    )
    assert certificates["total"] == 0
